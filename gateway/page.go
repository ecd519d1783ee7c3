package gateway

import (
	"html/template"
	"net/http"
)

// pageData fills the gateway's own pages. Pod and port come from a Host
// the gateway already parsed (DNS label characters only); html/template
// escapes them anyway.
type pageData struct {
	Pod, Port, Domain string
	BadLink           bool
}

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}
code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}</style></head><body>{{end}}
{{define "unauthorized"}}{{template "head" .}}<h1 id="title">Sign-in link needed</h1>
{{if .D.BadLink}}<p id="reason">This link is not valid: it has expired, was revoked, or is for another pod.</p>{{end}}
<p>This address needs a signed link. On the machine that runs the pod, get one with:</p>
<p><code id="cmd">pinacle-node pod url {{.D.Pod}} {{.D.Port}}</code></p>
<p>(on a Mac: <code>pinacle pod url {{.D.Pod}} {{.D.Port}} --open</code>). Opening it signs this browser in to this port of this pod only.</p>
</body></html>{{end}}
{{define "badhost"}}{{template "head" .}}<h1 id="title">Unknown host</h1>
<p>This gateway serves only <code>&lt;port&gt;-&lt;pod&gt;.{{.D.Domain}}</code>.</p></body></html>{{end}}
{{define "notfound"}}{{template "head" .}}<h1 id="title">No such port</h1>
<p>Pod <code>{{.D.Pod}}</code> has no port <code>{{.D.Port}}</code>, or the pod does not exist.</p></body></html>{{end}}
{{define "unavailable"}}{{template "head" .}}<h1 id="title">Not answering</h1>
<p>Port <code>{{.D.Port}}</code> of pod <code>{{.D.Pod}}</code> is not answering: the pod may be stopped or the service still starting.</p></body></html>{{end}}
{{define "crosssite"}}{{template "head" .}}<h1 id="title">Cross-site request refused</h1>
<p>A page of another origin asked for port <code>{{.D.Port}}</code> of pod <code>{{.D.Pod}}</code>; the gateway lets only the pod's own pages, and links you follow, through.</p></body></html>{{end}}
{{define "busy"}}{{template "head" .}}<h1 id="title">Too many connections</h1>
<p>Pod <code>{{.D.Pod}}</code> has too many open requests through the gateway; try again shortly.</p></body></html>{{end}}
`))

type page struct{ name, title string }

var (
	pageUnauthorized = page{"unauthorized", "Sign-in link needed"}
	pageBadHost      = page{"badhost", "Unknown host"}
	pageNotFound     = page{"notfound", "No such port"}
	pageUnavailable  = page{"unavailable", "Not answering"}
	pageBusy         = page{"busy", "Too many connections"}
	pageCrossSite    = page{"crosssite", "Cross-site request refused"}
)

// writePage answers with one of the gateway's own pages, never cached.
func writePage(w http.ResponseWriter, code int, p page, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(code)
	_ = pages.ExecuteTemplate(w, p.name, struct {
		Title string
		D     pageData
	}{p.title, d})
}
