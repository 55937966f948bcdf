package phase

import (
	"errors"
	"net/http"
)

// Source says whose fault an error is (Pingora's ErrorSource).
type Source uint8

const (
	Internal   Source = iota // a bug or a local resource problem: 500
	Downstream               // the client: 4xx, or nothing when it has gone
	Upstream                 // the upstream: 502/503/504
)

func (s Source) String() string {
	switch s {
	case Downstream:
		return "downstream"
	case Upstream:
		return "upstream"
	}
	return "internal"
}

// Kind says what failed. Each kind has a default status (Status).
type Kind uint8

const (
	KindInternal        Kind = iota // 500
	KindBadRequest                  // 400
	KindNotFound                    // 404: no route, unknown API service, no file
	KindMethod                      // 405
	KindBodyTooLarge                // 413
	KindClientGone                  // 499 in logs; nothing is written
	KindUpstreamConnect             // 502: refused, unreachable
	KindUpstreamProto               // 502: reset, bad response, aborted body
	KindUpstreamTimeout             // 504: connect or response-header timeout
	KindRouteTimeout                // 504: the route's overall timeout
	KindUnavailable                 // 503: no target to try
	KindUnauthorized                // 401: no valid credentials
	KindForbidden                   // 403: valid credentials, not allowed
	KindAuthUnavailable             // 503: an auth dependency (keys, introspection) is down
	KindTooManyRequests             // 429: a rate limit
	KindRequestTimeout              // 408: the client sent its body too slowly
)

var kindStatus = [...]int{
	KindInternal:        http.StatusInternalServerError,
	KindBadRequest:      http.StatusBadRequest,
	KindNotFound:        http.StatusNotFound,
	KindMethod:          http.StatusMethodNotAllowed,
	KindBodyTooLarge:    http.StatusRequestEntityTooLarge,
	KindClientGone:      499,
	KindUpstreamConnect: http.StatusBadGateway,
	KindUpstreamProto:   http.StatusBadGateway,
	KindUpstreamTimeout: http.StatusGatewayTimeout,
	KindRouteTimeout:    http.StatusGatewayTimeout,
	KindUnavailable:     http.StatusServiceUnavailable,
	KindUnauthorized:    http.StatusUnauthorized,
	KindForbidden:       http.StatusForbidden,
	KindAuthUnavailable: http.StatusServiceUnavailable,
	KindTooManyRequests: http.StatusTooManyRequests,
	KindRequestTimeout:  http.StatusRequestTimeout,
}

var kindSource = [...]Source{
	KindInternal:        Internal,
	KindBadRequest:      Downstream,
	KindNotFound:        Downstream,
	KindMethod:          Downstream,
	KindBodyTooLarge:    Downstream,
	KindClientGone:      Downstream,
	KindUpstreamConnect: Upstream,
	KindUpstreamProto:   Upstream,
	KindUpstreamTimeout: Upstream,
	KindRouteTimeout:    Upstream,
	KindUnavailable:     Upstream,
	KindUnauthorized:    Downstream,
	KindForbidden:       Downstream,
	KindAuthUnavailable: Internal,
	KindTooManyRequests: Downstream,
	KindRequestTimeout:  Downstream,
}

// Error is the one error type of the request path: what failed, whose fault
// it was, which status it becomes and whether another attempt may help.
type Error struct {
	Kind      Kind
	Status    int  // explicit status; 0 means the kind's default
	Retryable bool // another upstream attempt may succeed
	// Detail is safe to show the client (problem details "detail"); it
	// never carries internal addresses or secrets.
	Detail string
	// Header is added to the error response (e.g. WWW-Authenticate,
	// Retry-After, Allow).
	Header http.Header
	// Session, on a refusal of a browser's login session, says who is
	// logged in and how to log out; the error page shows both, so a person
	// refused can log out and in as someone else. nil otherwise.
	Session *Session
	Err     error // the cause, for logs only
}

// Session is the login session an error page names.
type Session struct {
	User       string // the person's name or subject; not escaped
	LogoutPath string // where the page's logout button posts
}

// NewError returns an Error of kind k with a client-safe detail and a cause.
func NewError(k Kind, detail string, cause error) *Error {
	return &Error{Kind: k, Detail: detail, Err: cause}
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = http.StatusText(e.StatusCode())
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// StatusCode is the status this error becomes: the explicit one if set,
// else the kind's default.
func (e *Error) StatusCode() int {
	if e.Status != 0 {
		return e.Status
	}
	return kindStatus[e.Kind]
}

// Source says whose fault the error is.
func (e *Error) Source() Source { return kindSource[e.Kind] }

// AsError returns err as an *Error, wrapping foreign errors as internal.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Kind: KindInternal, Err: err}
}
