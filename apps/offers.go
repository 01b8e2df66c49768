package apps

import "time"

// Why an app waits: every offer considered for an app that needs
// instances is counted, used or not, and an unused one is counted under
// the first check it failed (rejectReasons). GET /v2/queue shows the
// summary as Marathon's processedOffersSummary:
//
//	"processedOffersSummary": {
//	  "processedOffersCount": 12, "unusedOffersCount": 12,
//	  "lastUnusedOfferAt": "2026-...Z", "lastUsedOfferAt": "2026-...Z",
//	  "rejectSummaryLastOffers": [
//	    {"reason": "UnfulfilledConstraint", "declined": 12, "processed": 12},
//	    {"reason": "InsufficientCpus", "declined": 0, "processed": 0}, ...],
//	  "rejectSummaryLaunchAttempt": [...]
//	}
//
// As in Marathon, the reasons form a funnel: "processed" of a reason is how
// many offers reached its check, "declined" how many failed it.
// rejectSummaryLastOffers covers the last recentOffers offers,
// rejectSummaryLaunchAttempt every offer since the app's definition last
// changed (the stats are reset then).

// recentOffers is how many of the latest offers rejectSummaryLastOffers covers.
const recentOffers = 10

// offerStats is the record of the offers processed for one app.
type offerStats struct {
	processed, unused    int
	lastUsed, lastUnused time.Time
	declined             [len(rejectReasons)]int
	// recent holds the outcome of the latest offers: the reason index, or
	// -1 for a used offer; oldest first.
	recent []int
}

// record counts one offer's outcome.
func (s *offerStats) record(r offerResult, now time.Time) {
	s.processed++
	outcome := -1
	if r.Placed > 0 {
		s.lastUsed = now
	} else {
		s.unused++
		s.lastUnused = now
		for i, reason := range rejectReasons {
			if reason == r.Reason {
				outcome = i
				s.declined[i]++
			}
		}
	}
	s.recent = append(s.recent, outcome)
	if len(s.recent) > recentOffers {
		s.recent = append(s.recent[:0], s.recent[len(s.recent)-recentOffers:]...)
	}
}

// rejectSummary is one reason of processedOffersSummary.
type rejectSummary struct {
	Reason    string `json:"reason"`
	Declined  int    `json:"declined"`
	Processed int    `json:"processed"`
}

// offersSummary is Marathon's processedOffersSummary.
type offersSummary struct {
	ProcessedOffersCount       int             `json:"processedOffersCount"`
	UnusedOffersCount          int             `json:"unusedOffersCount"`
	LastUnusedOfferAt          string          `json:"lastUnusedOfferAt,omitempty"`
	LastUsedOfferAt            string          `json:"lastUsedOfferAt,omitempty"`
	RejectSummaryLastOffers    []rejectSummary `json:"rejectSummaryLastOffers"`
	RejectSummaryLaunchAttempt []rejectSummary `json:"rejectSummaryLaunchAttempt"`
}

// funnel turns per-reason declines out of total offers into the summary.
func funnel(total int, declined [len(rejectReasons)]int) []rejectSummary {
	out := make([]rejectSummary, 0, len(rejectReasons))
	left := total
	for i, reason := range rejectReasons {
		out = append(out, rejectSummary{Reason: reason, Declined: declined[i], Processed: left})
		left -= declined[i]
	}
	return out
}

// summary renders the stats.
func (s *offerStats) summary() offersSummary {
	out := offersSummary{ProcessedOffersCount: s.processed, UnusedOffersCount: s.unused,
		RejectSummaryLaunchAttempt: funnel(s.processed, s.declined)}
	if !s.lastUnused.IsZero() {
		out.LastUnusedOfferAt = s.lastUnused.UTC().Format(timeFormat)
	}
	if !s.lastUsed.IsZero() {
		out.LastUsedOfferAt = s.lastUsed.UTC().Format(timeFormat)
	}
	var recent [len(rejectReasons)]int
	for _, o := range s.recent {
		if o >= 0 {
			recent[o]++
		}
	}
	out.RejectSummaryLastOffers = funnel(len(s.recent), recent)
	return out
}
