package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// A page of another pod (same site, other origin) cannot use the user's
// cookie for this pod; the pod's own pages, navigations and non-browser
// clients can.
func TestCrossPodRequests(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	e.backend(t, testPod, "term", wsEcho())
	l := e.link(t, testPod, "app", time.Hour)
	cookie := CookieName + "=" + mustURL(l.URL).Query().Get("token")
	self := "http://app-" + testPod + ".localhost"
	for _, tc := range []struct {
		name   string
		method string
		hdr    []string
		want   int
	}{
		{"no browser headers", "GET", nil, 200},
		{"own origin", "POST", []string{"Origin", self}, 200},
		{"another port of the pod", "POST", []string{"Origin", "http://api-" + testPod + ".localhost:8089"}, 200},
		{"another pod", "POST", []string{"Origin", "http://app-p99.localhost"}, 403},
		{"another pod, GET", "GET", []string{"Origin", "http://app-p99.localhost"}, 403},
		{"another site", "GET", []string{"Origin", "https://evil.example"}, 403},
		{"opaque origin", "POST", []string{"Origin", "null"}, 403},
		{"same-site subresource", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors"}, 403},
		{"cross-site subresource", "GET", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"}, 403},
		{"same-site navigation", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate"}, 200},
		{"cross-site form navigation", "POST", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}, 403},
		{"same-origin fetch", "GET", []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors"}, 200},
		{"typed in the address bar", "GET", []string{"Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate"}, 200},
	} {
		req, _ := http.NewRequest(tc.method, l.Host, nil)
		req.Header.Set("Cookie", cookie)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			req.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		resp, err := (&http.Client{Transport: &http.Transport{DialContext: e.dial}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	// A WebSocket from another pod's page is refused before the pod sees it.
	tl := e.link(t, testPod, "term", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := http.Header{"Cookie": {CookieName + "=" + mustURL(tl.URL).Query().Get("token")}, "Origin": {"http://app-p99.localhost"}}
	if _, resp, err := e.wsDial(ctx, tl.Host, hdr); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket from another pod's page: %v %v, want 403", resp, err)
	}
	hdr.Set("Origin", "http://term-"+testPod+".localhost")
	c, _, err := e.wsDial(ctx, tl.Host, hdr)
	if err != nil {
		t.Fatalf("WebSocket from the pod's own page: %v", err)
	}
	c.CloseNow()
}
