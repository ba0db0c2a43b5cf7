package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIError is an error response of the approvals API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("approvals API: %d %s: %s", e.Status, e.Code, e.Message)
}

// Client talks to the approvals API as one approver.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sets the HTTP client (default: 30 s time-out).
func WithHTTPClient(h *http.Client) ClientOption { return func(c *Client) { c.http = h } }

// NewClient returns a client for the service at baseURL (http://host:port)
// authenticating with token.
func NewClient(baseURL, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("approvals: bad server URL %q: want http(s)://host:port", baseURL)
	}
	if token == "" {
		return nil, errors.New("approvals: no token (set APPROVE_TOKEN or --token-file)")
	}
	c := &Client{base: u, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// RequestFilter selects requests in List.
type RequestFilter struct {
	Status  Status
	Kind    string
	Session string
	Limit   int
}

// Me returns the approver the token belongs to.
func (c *Client) Me(ctx context.Context) (ApproverView, error) {
	var v ApproverView
	return v, c.do(ctx, http.MethodGet, "/api/v1/me", nil, &v)
}

// List returns requests, newest first.
func (c *Client) List(ctx context.Context, f RequestFilter) ([]RequestView, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Session != "" {
		q.Set("session", f.Session)
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	path := "/api/v1/requests"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v []RequestView
	return v, c.do(ctx, http.MethodGet, path, nil, &v)
}

// Get returns one request.
func (c *Client) Get(ctx context.Context, id string) (RequestView, error) {
	var v RequestView
	return v, c.do(ctx, http.MethodGet, "/api/v1/requests/"+url.PathEscape(id), nil, &v)
}

// Decide answers a request.
func (c *Client) Decide(ctx context.Context, id string, in DecisionInput) (DecisionOutput, error) {
	var v DecisionOutput
	return v, c.do(ctx, http.MethodPost, "/api/v1/requests/"+url.PathEscape(id)+"/decision", in, &v)
}

// Holds returns the active holds.
func (c *Client) Holds(ctx context.Context) ([]HoldView, error) {
	var v []HoldView
	return v, c.do(ctx, http.MethodGet, "/api/v1/holds", nil, &v)
}

// Release lifts a session's holds.
func (c *Client) Release(ctx context.Context, session string, in ReleaseInput) (ReleaseOutput, error) {
	var v ReleaseOutput
	return v, c.do(ctx, http.MethodPost, "/api/v1/holds/"+url.PathEscape(session)+"/release", in, &v)
}

// Alerts returns recent alerts, newest first.
func (c *Client) Alerts(ctx context.Context, limit int) ([]AlertView, error) {
	var v []AlertView
	return v, c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/alerts?limit=%d", max(limit, 1)), nil, &v)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("approvals API: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("approvals API: read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e ErrorView
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return &APIError{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(data))}
		}
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("approvals API: decode response: %w", err)
	}
	return nil
}
