package nodeconfig

import "testing"

// The example shipped in deploy/ must stay loadable.
func TestDeployExample(t *testing.T) {
	c, err := Load("../../deploy/node.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != "systrap" || c.Ports.ListenAddr != "127.0.0.1" || c.Gateway.Port != DefaultGatewayPort {
		t.Fatalf("%+v", c)
	}
}
