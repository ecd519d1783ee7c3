package vk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Config is what `pinacle-vk` needs.
type Config struct {
	Kubeconfig string // kubeconfig of the node's Kubernetes identity
	NodeName   string
	Socket     string // the pinacle daemon's API socket
	HostIP     string // the node's address (pod status, node addresses, ports annotation)
	// ListenAddr is where the kubelet API (logs, exec, stats) listens,
	// host:port; the API server reaches it at HostIP and this port.
	ListenAddr string
	// TLSCert and TLSKey serve the kubelet API (empty: a self-signed pair
	// made at start); ClientCA is the CA of the API server's kubelet
	// client certificate. Without ClientCA the kubelet API is not served.
	TLSCert, TLSKey, ClientCA string
	Capacity                  Capacity
	// KeepThroughOutage clears the tolerationSeconds Kubernetes gives pods
	// for not-ready and unreachable nodes, so a node outage never evicts
	// (and so never destroys) a workspace.
	KeepThroughOutage bool
	Version           string
	Log               *slog.Logger
}

// Run registers the node and serves its pods until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.NodeName == "" || cfg.Kubeconfig == "" {
		return fmt.Errorf("vk: --node-name and --kubeconfig are required: %w", errdefs.ErrInvalidArgument)
	}
	if net.ParseIP(cfg.HostIP) == nil {
		return fmt.Errorf("vk: --address %q is not an IP address: %w", cfg.HostIP, errdefs.ErrInvalidArgument)
	}
	_, portStr, err := net.SplitHostPort(cfg.ListenAddr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		return fmt.Errorf("vk: --listen %q: want host:port: %w", cfg.ListenAddr, errdefs.ErrInvalidArgument)
	}
	pc := api.NewClient(cfg.Socket)
	defer pc.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = pc.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("vk: the pinacle daemon does not answer (start pinacle-node serve first): %w", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("vk: kubeconfig %s: %w (%w)", cfg.Kubeconfig, errdefs.ErrInvalidArgument, err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("vk: kubernetes client: %w", err)
	}
	n, prov, err := newNode(cfg, pc, kc, int32(port))
	if err != nil {
		return err
	}
	synced := make(chan struct{})
	go func() {
		select {
		case <-n.Ready():
			cfg.Log.Info("node registered", "node", cfg.NodeName, "address", cfg.HostIP, "kubeletAPI", cfg.ListenAddr)
			close(synced)
		case <-ctx.Done():
		}
	}()
	go prov.Run(ctx, synced)
	err = n.Run(ctx)
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

func newNode(cfg Config, pc *api.Client, kc kubernetes.Interface, port int32) (*nodeutil.Node, *Provider, error) {
	var prov *Provider
	newProvider := func(pcfg nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		NodeSpec(pcfg.Node, cfg.Capacity, cfg.HostIP, port, cfg.Version)
		prov = NewProvider(ProviderConfig{Node: pc, Kube: kc, Pods: pcfg.Pods, NodeName: cfg.NodeName,
			HostIP: cfg.HostIP, Log: cfg.Log, KeepThroughOutage: cfg.KeepThroughOutage})
		np := &nodeProvider{ping: pc.Ping, every: 5 * time.Second, node: pcfg.Node.DeepCopy()}
		return prov, np, nil
	}
	opts := []nodeutil.NodeOpt{nodeutil.WithClient(kc), func(c *nodeutil.NodeConfig) error {
		c.HTTPListenAddr = cfg.ListenAddr
		c.NumWorkers = 4
		return nil
	}}
	if cfg.ClientCA != "" {
		keypair, err := keyPair(cfg)
		if err != nil {
			return nil, nil, err
		}
		mux := http.NewServeMux()
		opts = append(opts, nodeutil.AttachProviderRoutes(mux),
			nodeutil.WithTLSConfig(nodeutil.WithCAFromPath(cfg.ClientCA), func(t *tls.Config) error {
				t.Certificates = append(t.Certificates, keypair)
				return nil
			}),
			func(c *nodeutil.NodeConfig) error { c.Handler = mux; return nil })
	} else {
		cfg.Log.Warn("no --client-ca: the kubelet API (kubectl logs, exec) is not served")
	}
	n, err := nodeutil.NewNode(cfg.NodeName, newProvider, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("vk: %w", err)
	}
	return n, prov, nil
}

// keyPair loads the serving pair, or makes a self-signed one for HostIP.
func keyPair(cfg Config) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		return tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cfg.NodeName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(cfg.HostIP)},
		DNSNames:     []string{cfg.NodeName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
