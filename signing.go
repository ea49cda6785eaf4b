// signing.go guards routes against variant floods: per-route size allow-lists and
// HMAC-signed URLs, checked by the router before anything is fetched or made.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// URL signing, in one place:
//
//   - A route is signed when its url_re has a group named "signature", such as
//     '/s/(?P<signature>[A-Za-z0-9_-]{16})(?P<base>/.+)\.jpg/resize-...'. It may sit
//     anywhere in the path; the group must accept 16 base64url characters.
//   - The signature is the first 16 characters (96 bits) of
//     base64url-without-padding(HMAC-SHA256(key, msg)), where msg is the request path,
//     percent-decoded as it is routed, with the text the signature group captured cut
//     out: "/s/Ab..yz/a.jpg/resize-300x.webp" signs "/s//a.jpg/resize-300x.webp". The
//     query string is not signed (it plays no part in routing). katana --sign takes
//     and prints paths in that decoded form; escape them for a URL as usual.
//   - signature_key lists the keys: the first signs (katana --sign), every one
//     verifies, so a key is rotated by putting the new one first and dropping the old
//     one once the URLs signed with it are gone.
//   - A missing or wrong signature is 403, compared in constant time (hmac.Equal).
//
// TODO: the query string is not signed, so a cache_key_query proxy route that is
// signed still lets anyone mint query variants; signing path+"?"+query for such
// routes would close that when one is needed.
//
// Size allow-lists: allowed_sizes on a resize action lists the WxH a request may ask
// for after normalisation ("300x", "600x400", "x120"); any other size is 400.

// Errors of the flood guards, mapped to statuses by the handler.
var (
	errBadSignature   = errors.New("missing or invalid URL signature")
	errSizeNotAllowed = errors.New("size not allowed")
	errNotSigned      = errors.New("no signed route matches")
)

const (
	// signatureGroup names the url_re group that holds a URL's signature.
	signatureGroup = "signature"
	// signatureLen is the length of a signature in base64url characters.
	signatureLen = 16
	// minKeyLen is the least length of a signature key, in bytes.
	minKeyLen = 16
	// signaturePlaceholder marks where --sign puts the signature in a path.
	signaturePlaceholder = "{signature}"
)

// signer makes and checks URL signatures. The first key signs, all keys verify. It
// is read-only after construction and safe for concurrent use; a nil or empty
// signer verifies nothing.
type signer struct {
	keys [][]byte
}

// newSigner returns a signer over the keys of signature_key.
func newSigner(keys []string) *signer {
	s := &signer{}
	for _, k := range keys {
		s.keys = append(s.keys, []byte(k))
	}
	return s
}

// mac is the full signature of msg under key.
func mac(key []byte, msg string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:signatureLen]
}

// sign returns the signature of msg under the first key.
func (s *signer) sign(msg string) (string, error) {
	if s == nil || len(s.keys) == 0 {
		return "", errors.New("signature_key is empty")
	}
	return mac(s.keys[0], msg), nil
}

// verify reports whether sig is the signature of msg under any key. Every key is
// tried, so the time taken does not depend on which key matched.
func (s *signer) verify(msg, sig string) bool {
	if s == nil || len(sig) != signatureLen {
		return false
	}
	ok := false
	for _, k := range s.keys {
		if hmac.Equal([]byte(mac(k, msg)), []byte(sig)) {
			ok = true
		}
	}
	return ok
}

// signedMessage splits a path matched by a signed action into the message that
// is signed and the signature it carries.
func signedMessage(a *action, p string) (msg, sig string) {
	loc := a.re.FindStringSubmatchIndex(p)
	i := 2 * a.re.SubexpIndex(signatureGroup)
	if loc == nil || i < 2 || loc[i] < 0 {
		return p, ""
	}
	return p[:loc[i]] + p[loc[i+1]:], p[loc[i]:loc[i+1]]
}

// checkSignature refuses a path that a signed action matched without a valid
// signature. Unsigned actions pass.
func (rt *router) checkSignature(a *action, p string) error {
	if !a.signed {
		return nil
	}
	msg, sig := signedMessage(a, p)
	if !rt.signer.verify(msg, sig) {
		return errBadSignature
	}
	return nil
}

// isSigned reports whether a compiled url_re has a signature group.
func isSigned(re *regexp.Regexp) bool {
	return re != nil && re.SubexpIndex(signatureGroup) > 0
}

// signPath returns p with its signature filled in, for operators minting URLs
// (katana --sign). p is a path that a signed route matches once the placeholder
// "{signature}" in it is replaced by 16 characters; the first route that matches
// it must be signed.
func signPath(cfg *Config, p string) (string, error) {
	rt, err := newRouter(cfg)
	if err != nil {
		return "", err
	}
	if strings.Count(p, signaturePlaceholder) != 1 {
		return "", fmt.Errorf("sign %q: put %s once where the signature goes", p,
			signaturePlaceholder)
	}
	p = strings.Replace(p, signaturePlaceholder, strings.Repeat("A", signatureLen), 1)
	for _, a := range rt.actions {
		if !a.re.MatchString(p) {
			continue
		}
		if !a.signed {
			return "", fmt.Errorf("sign %q: %w: %s matches first and is not signed", p,
				errNotSigned, a.key)
		}
		loc := a.re.FindStringSubmatchIndex(p)
		i := 2 * a.re.SubexpIndex(signatureGroup)
		if loc[i] < 0 || loc[i+1]-loc[i] != signatureLen {
			return "", fmt.Errorf("sign %q: the signature group of %s does not hold %s",
				p, a.key, signaturePlaceholder)
		}
		sig, err := rt.signer.sign(p[:loc[i]] + p[loc[i+1]:])
		if err != nil {
			return "", fmt.Errorf("sign %q: %w", p, err)
		}
		return p[:loc[i]] + sig + p[loc[i+1]:], nil
	}
	return "", fmt.Errorf("sign %q: %w", p, errNotSigned)
}

// printSignedPath writes the signed form of p, for katana --sign.
func printSignedPath(w io.Writer, cfg *Config, p string) error {
	signed, err := signPath(cfg, p)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, signed)
	return err
}

// sizeSet is an allow-list of normalised sizes; nil allows any size.
type sizeSet map[[2]int]bool

// sizeRe is the grammar of one allowed_sizes entry: "300x", "600x400", "x120".
var sizeRe = regexp.MustCompile(`\A(\d{0,5})x(\d{0,5})\z`)

// parseSizes reads an allowed_sizes list, checking each entry against the
// thumb_max_* clamps (a larger size could never be asked for). key names the list.
func parseSizes(key string, list []string, cfg *Config) (sizeSet, error) {
	if list == nil {
		return nil, nil
	}
	if len(list) == 0 {
		// An empty list would allow nothing, and a dump leaves it out, which
		// allows everything: refuse the ambiguity.
		return nil, fmt.Errorf("%s: an empty list allows no size; leave it out to allow any",
			key)
	}
	set := sizeSet{}
	var errs []error
	for i, s := range list {
		m := sizeRe.FindStringSubmatch(s)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not WxH, Wx or xH", key, i, s))
			continue
		}
		w, h := atoi(m[1]), atoi(m[2])
		if w > cfg.ThumbMaxWidth || h > cfg.ThumbMaxHeight {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is over thumb_max_width x "+
				"thumb_max_height (%dx%d)", key, i, s, cfg.ThumbMaxWidth, cfg.ThumbMaxHeight))
			continue
		}
		set[[2]int{w, h}] = true
	}
	return set, errors.Join(errs...)
}

// allows reports whether the set lets a request ask for w×h.
func (s sizeSet) allows(w, h int) bool {
	return s == nil || s[[2]int{w, h}]
}

// checkSize refuses a normalised size that the action's allow-list leaves out.
func (a *action) checkSize(o imageOptions) error {
	if a.sizes.allows(o.Width, o.Height) {
		return nil
	}
	return fmt.Errorf("%w: %s", errSizeNotAllowed, sizeString(o.Width, o.Height))
}

// sizeString writes a size the way allowed_sizes does, 0 as nothing.
func sizeString(w, h int) string {
	s := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	return s(w) + "x" + s(h)
}

// validateSigning checks signature_key: keys long enough and not repeated. Whether
// a signed route has keys is checked with the routes.
func validateSigning(keys []string) []error {
	var errs []error
	if keys != nil && len(keys) == 0 {
		// A dump leaves an empty list out: refuse it so that configs round-trip.
		errs = append(errs, errors.New("signature_key: an empty list; leave it out"))
	}
	seen := map[string]bool{}
	for i, k := range keys {
		switch {
		case len(k) < minKeyLen:
			errs = append(errs, fmt.Errorf("signature_key[%d]: %d bytes, want at least %d",
				i, len(k), minKeyLen))
		case seen[k]:
			errs = append(errs, fmt.Errorf("signature_key[%d]: repeats an earlier key", i))
		}
		seen[k] = true
	}
	return errs
}
