//! The decision table: what each scanner said (or why it said nothing) and the `[scan]`
//! policy in, the answer out. No I/O, so every row is a unit test.
//!
//! In order, the first row that applies wins:
//!
//! | condition                                          | answer             | label             |
//! |----------------------------------------------------|--------------------|-------------------|
//! | over a scanner's `max_bytes`, `oversize = reject`  | 552 5.3.4          | `oversize_reject` |
//! | over a scanner's `max_bytes`, `oversize = tempfail`| 451 4.3.1          | `tempfail`        |
//! | clamd found a virus                                | 554 5.7.1, named   | `virus`           |
//! | spam score >= `kill_level`                         | 550 5.7.1          | `killed`          |
//! | a scanner failed, `on_failure = tempfail`          | 451 4.7.1          | `tempfail`        |
//! | failed or oversize, and `accept_unscanned`         | deliver (a)        | `unscanned`       |
//! | spam score >= `tag_level`                          | deliver (b)        | `tagged`          |
//! | otherwise                                          | deliver (c)        | `clean`           |
//!
//! (a) with `X-Avsx-Unscanned: <scanner>: <reason>` per scanner missing, plus (b) or (c)
//! if spamd gave a score; (b) `X-Spam-Flag: YES`, `X-Spam-Score`, `X-Spam-Status: Yes,
//! ...` and the subject tag; (c) `X-Spam-Status: No, ...` (never `X-Spam-Flag`), when
//! spamd is configured; without spamd no X-Spam fields at all.
//!
//! A definite verdict from one scanner (virus, kill) stands even when the other failed:
//! the mail would be refused whatever the other said, and a permanent refusal spares the
//! sender pointless retries. The X-Spam fields are added whenever spamd gave a score,
//! also to mail delivered unscanned by clamd. A refusal is the answer to the message's final
//! dot, so the sending server tells its user; avsx never sends a bounce of its own.

use crate::config::{OnFailure, Oversize, Scan};
use crate::envelope::Reply;

use super::headers::{Field, clean};

/// What spamd said about a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Spam {
    pub score: f64,
    /// The rule names that hit, as spamd lists them.
    pub rules: Vec<String>,
}

/// What clamd said about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Virus {
    Clean,
    /// The signature name, e.g. `Eicar-Test-Signature`.
    Found(String),
}

/// One scanner's part in the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Not configured.
    Off,
    /// Not asked: another scanner's size limit settled the answer before scanning.
    Skipped,
    Done(T),
    /// No verdict; the reason, without addresses, fit for a header (logged in full
    /// where it happened).
    Failed(String),
    /// The message is larger than the scanner's `max_bytes`; it was not sent.
    Oversize {
        size: usize,
        limit: u64,
    },
}

impl<T> Outcome<T> {
    fn is_oversize(&self) -> bool {
        matches!(self, Outcome::Oversize { .. })
    }

    /// Why the message went without this scanner's verdict, if it did.
    fn unscanned(&self) -> Option<String> {
        match self {
            Outcome::Failed(why) => Some(why.clone()),
            Outcome::Oversize { size, limit } => {
                Some(format!("{size} bytes, over its {limit}-byte limit"))
            }
            Outcome::Off | Outcome::Skipped | Outcome::Done(_) => None,
        }
    }
}

/// The answer, before it is applied to the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Reject(Reply, &'static str),
    TempFail(Reply, &'static str),
    Deliver {
        /// Fields to add below avsx's Received field, in this order.
        fields: Vec<Field>,
        /// Prefix for the Subject (tagged mail with `subject_tag` set).
        subject_tag: Option<String>,
        tagged: bool,
        label: &'static str,
    },
}

/// Decides per the table in the module docs.
pub fn decide(policy: &Scan, spam: &Outcome<Spam>, virus: &Outcome<Virus>) -> Decision {
    if spam.is_oversize() || virus.is_oversize() {
        match policy.oversize {
            Oversize::Reject => {
                let r = Reply::new(552, "5.3.4", "message too big for content scanning");
                return Decision::Reject(r, "oversize_reject");
            }
            Oversize::Tempfail => {
                let r = Reply::new(
                    451,
                    "4.3.1",
                    "message too big for content scanning now, try again later",
                );
                return Decision::TempFail(r, "tempfail");
            }
            Oversize::AcceptUnscanned => {}
        }
    }
    if let Outcome::Done(Virus::Found(name)) = virus {
        let r = Reply::new(
            554,
            "5.7.1",
            format!("message refused: virus {} found", clean(name, 200)),
        );
        return Decision::Reject(r, "virus");
    }
    match spam {
        Outcome::Done(s) if s.score >= policy.kill_level => {
            let r = Reply::new(
                550,
                "5.7.1",
                format!("message refused as spam (score {})", score(s.score)),
            );
            return Decision::Reject(r, "killed");
        }
        _ => {}
    }
    let failed = matches!(spam, Outcome::Failed(_)) || matches!(virus, Outcome::Failed(_));
    if failed && policy.on_failure == OnFailure::Tempfail {
        let r = Reply::new(451, "4.7.1", "content scanner unavailable, try again later");
        return Decision::TempFail(r, "tempfail");
    }

    let mut fields = Vec::new();
    let mut tagged = false;
    if let Outcome::Done(s) = spam {
        tagged = s.score >= policy.tag_level;
        let status = if tagged { "Yes" } else { "No" };
        if tagged {
            fields.push(Field {
                name: "X-Spam-Flag",
                value: "YES".to_owned(),
            });
            fields.push(Field {
                name: "X-Spam-Score",
                value: score(s.score),
            });
        }
        let mut value = format!(
            "{status}, score={} required={}",
            score(s.score),
            score(policy.tag_level)
        );
        // The rules that hit, for ham too: they show why a mail came close.
        if !s.rules.is_empty() {
            value.push_str(" tests=");
            value.push_str(&s.rules.join(","));
        }
        fields.push(Field {
            name: "X-Spam-Status",
            value,
        });
    }
    let mut unscanned = false;
    for (scanner, why) in [("spamd", spam.unscanned()), ("clamd", virus.unscanned())] {
        if let Some(why) = why {
            unscanned = true;
            fields.push(Field {
                name: "X-Avsx-Unscanned",
                value: format!("{scanner}: {}", clean(&why, 300)),
            });
        }
    }
    let label = match (unscanned, tagged) {
        (true, _) => "unscanned",
        (false, true) => "tagged",
        (false, false) => "clean",
    };
    Decision::Deliver {
        fields,
        subject_tag: if tagged {
            policy.subject_tag.clone()
        } else {
            None
        },
        tagged,
        label,
    }
}

/// A score as SpamAssassin writes it: one decimal, and never `-0.0` (spamd's own
/// answer for a mail whose only hits score 0 is `-0.0`).
pub fn score(s: f64) -> String {
    let s = if s == 0.0 { 0.0 } else { s };
    format!("{s:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on_failure: OnFailure, oversize: Oversize) -> Scan {
        Scan {
            tag_level: 4.5,
            kill_level: 16.0,
            subject_tag: Some("[SPAM]".into()),
            on_failure,
            oversize,
            spamd: None,
            clamd: None,
        }
    }

    fn default() -> Scan {
        policy(OnFailure::Tempfail, Oversize::Tempfail)
    }

    fn spam(score: f64) -> Outcome<Spam> {
        Outcome::Done(Spam {
            score,
            rules: vec!["RULE1".into(), "RULE2".into()],
        })
    }

    fn found() -> Outcome<Virus> {
        Outcome::Done(Virus::Found("Eicar-Test-Signature".into()))
    }

    fn failed() -> Outcome<Spam> {
        Outcome::Failed("no answer within 30s".into())
    }

    fn code(d: &Decision) -> (u16, &str, &'static str) {
        match d {
            Decision::Reject(r, l) | Decision::TempFail(r, l) => (r.code, r.enhanced.as_str(), l),
            Decision::Deliver { label, .. } => (250, "", label),
        }
    }

    fn fields(d: &Decision) -> Vec<String> {
        match d {
            Decision::Deliver { fields, .. } => fields
                .iter()
                .map(|f| format!("{}: {}", f.name, f.value))
                .collect(),
            _ => panic!("not delivered: {d:?}"),
        }
    }

    #[test]
    fn clean_mail_gets_status_no_and_never_the_flag() {
        let d = decide(&default(), &spam(-0.0), &Outcome::Done(Virus::Clean));
        assert_eq!(code(&d), (250, "", "clean"));
        assert_eq!(
            fields(&d),
            ["X-Spam-Status: No, score=0.0 required=4.5 tests=RULE1,RULE2"]
        );
        let Decision::Deliver {
            tagged,
            subject_tag,
            ..
        } = d
        else {
            unreachable!()
        };
        assert!(!tagged);
        assert_eq!(subject_tag, None);
    }

    #[test]
    fn tagged_mail_gets_flag_score_status_and_subject_tag() {
        let d = decide(&default(), &spam(15.3), &Outcome::Done(Virus::Clean));
        assert_eq!(code(&d), (250, "", "tagged"));
        assert_eq!(
            fields(&d),
            [
                "X-Spam-Flag: YES",
                "X-Spam-Score: 15.3",
                "X-Spam-Status: Yes, score=15.3 required=4.5 tests=RULE1,RULE2",
            ]
        );
        let Decision::Deliver {
            tagged,
            subject_tag,
            ..
        } = d
        else {
            unreachable!()
        };
        assert!(tagged);
        assert_eq!(subject_tag.as_deref(), Some("[SPAM]"));
        // Exactly at the levels counts as reaching them.
        assert_eq!(
            code(&decide(&default(), &spam(4.5), &Outcome::Off)).2,
            "tagged"
        );
        assert_eq!(
            code(&decide(&default(), &spam(4.4), &Outcome::Off)).2,
            "clean"
        );
        assert_eq!(
            code(&decide(&default(), &spam(16.0), &Outcome::Off)).2,
            "killed"
        );
    }

    #[test]
    fn kill_and_virus_are_refused_for_good() {
        let d = decide(&default(), &spam(1000.0), &Outcome::Done(Virus::Clean));
        assert_eq!(code(&d), (550, "5.7.1", "killed"));
        let d = decide(&default(), &spam(0.0), &found());
        assert_eq!(code(&d), (554, "5.7.1", "virus"));
        let Decision::Reject(r, _) = d else {
            unreachable!()
        };
        assert!(r.lines[0].contains("Eicar-Test-Signature"), "{r}");
        // A virus beats a kill score, and either beats the other scanner failing.
        assert_eq!(
            code(&decide(&default(), &spam(1000.0), &found())).2,
            "virus"
        );
        assert_eq!(code(&decide(&default(), &failed(), &found())).2, "virus");
        let down = Outcome::Failed("cannot connect".into());
        assert_eq!(code(&decide(&default(), &spam(20.0), &down)).2, "killed");
    }

    #[test]
    fn failure_tempfails_unless_accepting_unscanned() {
        let d = decide(&default(), &failed(), &Outcome::Done(Virus::Clean));
        assert_eq!(code(&d), (451, "4.7.1", "tempfail"));
        let down = Outcome::Failed("cannot connect".into());
        let d = decide(&default(), &spam(1.0), &down);
        assert_eq!(code(&d), (451, "4.7.1", "tempfail"));

        let accept = policy(OnFailure::AcceptUnscanned, Oversize::Tempfail);
        let d = decide(&accept, &failed(), &down);
        assert_eq!(code(&d), (250, "", "unscanned"));
        assert_eq!(
            fields(&d),
            [
                "X-Avsx-Unscanned: spamd: no answer within 30s",
                "X-Avsx-Unscanned: clamd: cannot connect",
            ]
        );
        // spamd's fields are still added when only clamd failed.
        let d = decide(&accept, &spam(5.0), &down);
        assert_eq!(code(&d).2, "unscanned");
        assert_eq!(fields(&d).len(), 4);
    }

    #[test]
    fn oversize_follows_its_own_policy() {
        let over: Outcome<Spam> = Outcome::Oversize {
            size: 600_000,
            limit: 512_000,
        };
        let p = |o| policy(OnFailure::Tempfail, o);
        let clean = Outcome::Done(Virus::Clean);
        let d = decide(&p(Oversize::Reject), &over, &Outcome::Skipped);
        assert_eq!(code(&d), (552, "5.3.4", "oversize_reject"));
        let d = decide(&p(Oversize::Tempfail), &over, &Outcome::Skipped);
        assert_eq!(code(&d), (451, "4.3.1", "tempfail"));
        let d = decide(&p(Oversize::AcceptUnscanned), &over, &clean);
        assert_eq!(code(&d), (250, "", "unscanned"));
        assert_eq!(
            fields(&d),
            ["X-Avsx-Unscanned: spamd: 600000 bytes, over its 512000-byte limit"]
        );
        // Accepting oversize mail unscanned still refuses what the other scanner found.
        let d = decide(&p(Oversize::AcceptUnscanned), &over, &found());
        assert_eq!(code(&d).2, "virus");
        let big_for_clamd = Outcome::Oversize {
            size: 30 << 20,
            limit: 25 << 20,
        };
        let d = decide(&p(Oversize::Reject), &Outcome::Skipped, &big_for_clamd);
        assert_eq!(code(&d).2, "oversize_reject");
    }

    #[test]
    fn nothing_configured_delivers_without_fields() {
        let d = decide(&default(), &Outcome::Off, &Outcome::Off);
        assert_eq!(code(&d), (250, "", "clean"));
        assert!(fields(&d).is_empty());
    }

    #[test]
    fn scores_print_like_spamassassin() {
        assert_eq!(score(-0.0), "0.0");
        assert_eq!(score(15.3), "15.3");
        assert_eq!(score(-1.9), "-1.9");
        assert_eq!(score(1000.0), "1000.0");
    }
}
