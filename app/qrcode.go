package app

import (
	"context"
	"time"
)

// joinQRCacheFor is how long the join QR code URL is reused; WeCom keeps it valid for 7 days.
const joinQRCacheFor = 24 * time.Hour

// joinQRCode returns the URL of the image members scan to join: wecom.join_qrcode_url if set,
// else the corp's join QR code from WeCom, cached for a day. It returns "" (the page then shows
// the invitation guidance only) when WeCom cannot be asked.
func (s *Service) joinQRCode(ctx context.Context) string {
	if s.JoinQRCodeURL != "" {
		return s.JoinQRCodeURL
	}
	s.qrMu.Lock()
	defer s.qrMu.Unlock()
	if s.qrURL != "" && s.now().Sub(s.qrAt) < joinQRCacheFor {
		return s.qrURL
	}
	u, err := s.WeCom.JoinQRCode(ctx)
	if err != nil {
		s.log().Warn("join QR code unavailable", "err", err)
		// Ask again in a minute, not on every page view; a stale URL stays valid for up to 7 days.
		s.qrAt = s.now().Add(time.Minute - joinQRCacheFor)
		return s.qrURL
	}
	s.qrURL, s.qrAt = u, s.now()
	return u
}
