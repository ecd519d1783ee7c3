// Package apiserver serves an api.Service as HTTP+JSON on the node's unix
// socket, exec sessions included; internal/api holds the matching client.
package apiserver
