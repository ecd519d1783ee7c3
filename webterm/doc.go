// Package webterm serves a shell in the browser: an embedded xterm.js page
// and a websocket that runs one shell on its own pty per connection.
package webterm
