// The pinacle web terminal page: xterm.js on a websocket to /ws.
// Binary messages are terminal bytes both ways; text messages are JSON
// control frames ({"type":"resize"|"hello"|"exit"|"error", ...}).
(function () {
  "use strict";
  var term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    theme: { background: "#1e1e1e" }
  });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("term"));
  fit.fit();

  var status = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var enc = new TextEncoder();
  var ws = null;
  var done = false;

  function show(msg) {
    statusText.textContent = msg;
    status.className = "shown";
    fit.fit();
  }

  function send(data) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);
  }

  function connect() {
    done = false;
    status.className = "";
    fit.fit();
    var page = new URLSearchParams(location.search);
    var u = new URL("ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    u.search = "";
    u.searchParams.set("cols", term.cols);
    u.searchParams.set("rows", term.rows);
    if (page.get("token")) u.searchParams.set("token", page.get("token"));
    ws = new WebSocket(u.toString());
    ws.binaryType = "arraybuffer";
    ws.onopen = function () { term.focus(); };
    ws.onmessage = function (ev) {
      if (typeof ev.data !== "string") {
        term.write(new Uint8Array(ev.data));
        return;
      }
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "hello") {
        document.title = (m.host ? m.host + ": " : "") + "terminal";
      } else if (m.type === "exit") {
        done = true;
        show("Shell exited with code " + m.code + (m.signal ? " (" + m.signal + ")" : "") + ".");
      } else if (m.type === "error") {
        done = true;
        show("Error: " + m.message);
      }
    };
    ws.onclose = function (ev) {
      if (!done) show("Disconnected" + (ev.reason ? ": " + ev.reason : "") + " (code " + ev.code + ").");
      ws = null;
    };
  }

  // A large paste is one onData call: send it in pieces, well under the
  // server's 1 MiB message limit.
  term.onData(function (d) {
    var b = enc.encode(d);
    for (var i = 0; i < b.length; i += 65536) send(b.subarray(i, i + 65536));
  });
  term.onBinary(function (d) {
    var b = new Uint8Array(d.length);
    for (var i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 255;
    send(b);
  });
  term.onResize(function (s) { send(JSON.stringify({ type: "resize", cols: s.cols, rows: s.rows })); });
  window.addEventListener("resize", function () { fit.fit(); });
  document.getElementById("reconnect").addEventListener("click", function () {
    term.reset();
    connect();
  });
  connect();
})();
