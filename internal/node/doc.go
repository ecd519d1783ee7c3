// Package node builds a node's parts from its configuration (node.yaml): the one composition root that serve, cleanup, run and the image commands share.
package node
