package h2server

import "strings"

// commonFields are field names common enough to convert between their
// wire (lower-case) and canonical forms without allocating.
var commonFields = []string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
	"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
	"Access-Control-Request-Headers", "Access-Control-Request-Method", "Age", "Allow",
	"Authorization", "Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
	"Content-Length", "Content-Location", "Content-Range", "Content-Security-Policy", "Content-Type",
	"Cookie", "Date", "Etag", "Expect", "Expires", "From", "Host", "If-Match", "If-Modified-Since",
	"If-None-Match", "If-Range", "If-Unmodified-Since", "Last-Modified", "Link", "Location",
	"Max-Forwards", "Origin", "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Range",
	"Referer", "Referrer-Policy", "Refresh", "Retry-After", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
	"Sec-Fetch-Site", "Sec-Fetch-User", "Server", "Set-Cookie", "Strict-Transport-Security",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade-Insecure-Requests", "User-Agent", "Vary", "Via",
	"Www-Authenticate", "X-Content-Type-Options", "X-Forwarded-For", "X-Forwarded-Host",
	"X-Forwarded-Proto", "X-Frame-Options", "X-Request-Id", "X-Real-Ip", "Traceparent", "Tracestate",
}

// commonCanonical maps wire names to canonical ones, commonLower the
// reverse. Both are built once and only read.
var commonCanonical, commonLower = func() (map[string]string, map[string]string) {
	canon := make(map[string]string, len(commonFields))
	lower := make(map[string]string, len(commonFields))
	for _, k := range commonFields {
		lk := strings.ToLower(k)
		canon[lk] = k
		lower[k] = lk
	}
	return canon, lower
}()
