// Package podspec defines the pod spec, the document users write to
// describe a development environment, with strict decoding and validation.
package podspec
