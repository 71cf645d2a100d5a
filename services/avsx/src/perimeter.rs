//! The [`Backend`] the SMTP front asks: recipients decided by the recipient map and
//! LDAP, messages judged by the scanners and relayed inward, every verdict kept for the
//! score statistics. avsx answers 250 only once the internal server has accepted a
//! message, and refuses everything else before the end of the SMTP transaction, so it
//! never has to send a bounce.

use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, info, warn};

use crate::envelope::{Backend, Envelope, Reply};
use crate::metrics::Metrics;
use crate::recipients::{Recipients, Verdict as RcptVerdict};
use crate::relay::Relay;
use crate::scan::{Action, Scanners};
use crate::stats::{Store, Verdict};

pub struct Perimeter {
    pub recipients: Arc<Recipients>,
    pub scanners: Scanners,
    pub relay: Relay,
    pub stats: Store,
    pub metrics: Metrics,
}

#[async_trait::async_trait]
impl Backend for Perimeter {
    async fn rcpt(&self, envelope: &Envelope, rcpt: &str) -> Reply {
        match self.recipients.check(rcpt).await {
            RcptVerdict::Known => Reply::new(250, "2.1.5", "recipient ok"),
            RcptVerdict::Unknown => {
                self.metrics.rejected("unknown_recipient");
                info!(id = %envelope.id, client = %envelope.client, %rcpt, "unknown recipient refused");
                Reply::new(
                    550,
                    "5.1.1",
                    format!("<{rcpt}>: recipient address rejected: user unknown"),
                )
            }
            RcptVerdict::OtherDomain => {
                self.metrics.rejected("relay_denied");
                info!(id = %envelope.id, client = %envelope.client, %rcpt, "relaying refused");
                Reply::new(554, "5.7.1", format!("<{rcpt}>: relay access denied"))
            }
            RcptVerdict::TempFail(why) => {
                self.metrics.rejected("recipient_tempfail");
                // The recipients module warns (throttled) about the directory itself.
                debug!(id = %envelope.id, %rcpt, reason = %why, "cannot verify the recipient now");
                Reply::new(
                    451,
                    "4.3.0",
                    "recipient verification unavailable, try again later",
                )
            }
        }
    }

    async fn data(&self, envelope: &Envelope, message: Vec<u8>) -> Reply {
        let size = message.len() as u64;
        let judgement = self.scanners.judge(&message).await;
        let (reply, action) = match judgement.action {
            Action::Deliver { message, .. } => {
                let reply = self.relay.send(envelope, &message).await;
                let action = if reply.is_positive() {
                    judgement.label
                } else {
                    "relay_failed"
                };
                (reply, action)
            }
            Action::Reject(reply) | Action::TempFail(reply) => (reply, judgement.label),
        };
        self.metrics.message(action);
        if !reply.is_positive() {
            self.metrics.rejected(action);
        }
        info!(
            id = %envelope.id,
            from = %envelope.mail_from,
            rcpts = envelope.rcpt_to.len(),
            size,
            score = ?judgement.score,
            virus = ?judgement.virus,
            action,
            reply = reply.code,
            "message judged"
        );
        let verdict = Verdict {
            time: Utc::now(),
            score: judgement.score,
            action: action.to_owned(),
            size,
        };
        if let Err(e) = self.stats.append(&verdict) {
            // The mail's fate is decided; a lost statistic must not change it.
            warn!(error = %format!("{e:#}"), "cannot record the verdict");
        }
        reply
    }
}
