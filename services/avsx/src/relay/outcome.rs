//! What came of a hand-over to the internal server, and the reply our client gets for
//! it. No I/O: the decisions of [`super`]'s module docs, as a function with tests.

use std::fmt;
use std::time::Duration;

use crate::envelope::Reply;

/// How far the conversation with the internal server got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stage {
    #[default]
    Connect,
    /// The greeting and EHLO: whether the server talks to us at all.
    Greeting,
    Starttls,
    Mail,
    Rcpt,
    Data,
    /// Our end of data was sent (or being sent); the server's verdict is pending.
    EndOfData,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting/EHLO",
            Stage::Starttls => "STARTTLS",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Quit => "QUIT",
        })
    }
}

/// A reply from the internal server: its code and its text (enhanced code first, when
/// it gave one, lines joined by spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub text: String,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, clip(&self.text))
    }
}

/// The internal server took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its reply text to the end of data (usually naming its queue id).
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection (refused, unreachable, name not found).
    Unreachable(String),
    /// The deadline passed at this stage.
    Timeout(Stage),
    /// The connection broke, or the server's answer made no sense.
    Broken(Stage, String),
    /// The server answered 4xx or 5xx at this stage.
    Refused(Stage, Answer),
    /// At least one recipient refused (none was sent the message).
    Recipients {
        refused: Vec<(String, Answer)>,
        total: usize,
    },
    /// A 2xx other than 250 to the end of data: perhaps taken, but not said so.
    NotQueued(Answer),
    /// The server cannot take it (SMTPUTF8 missing): the same every time.
    Unsupported(String),
    /// Our side cannot send it (an address we will not put on the wire).
    Local(String),
}

impl Failure {
    pub fn stage(&self) -> Stage {
        match self {
            Failure::Unreachable(_) => Stage::Connect,
            Failure::Timeout(s) | Failure::Broken(s, _) | Failure::Refused(s, _) => *s,
            Failure::Recipients { .. } => Stage::Rcpt,
            Failure::NotQueued(_) => Stage::EndOfData,
            Failure::Unsupported(_) | Failure::Local(_) => Stage::Mail,
        }
    }
}

/// The reply to our client for `result` (transaction `id`, deadline `timeout`).
pub fn reply(id: &str, result: &Result<Accepted, Failure>, timeout: Duration) -> Reply {
    let failure = match result {
        Ok(a) => {
            return Reply::new(
                250,
                "2.0.0",
                format!("Ok: {id} relayed, internal server said: {}", clip(&a.text)),
            );
        }
        Err(f) => f,
    };
    let secs = timeout.as_secs();
    match failure {
        Failure::Unreachable(e) => Reply::new(
            451,
            "4.4.1",
            format!("internal server unavailable: {e}; try again later"),
        ),
        Failure::Timeout(Stage::Connect) => Reply::new(
            451,
            "4.4.1",
            format!("internal server unavailable: no connection within {secs} s; try again later"),
        ),
        Failure::Timeout(stage) => Reply::new(
            451,
            "4.4.2",
            format!("internal server did not answer ({stage}) within {secs} s; try again later"),
        ),
        Failure::Broken(stage, e) => Reply::new(
            451,
            "4.4.2",
            format!("connection to the internal server failed at {stage}: {e}; try again later"),
        ),
        // It will not talk to us at all: an access rule or an overload, not this mail.
        Failure::Refused(stage @ (Stage::Connect | Stage::Greeting | Stage::Starttls), a) => {
            Reply::new(
                451,
                &enhanced(a, 4, "4.4.2"),
                format!("internal server refused the session ({stage}): {a}; try again later"),
            )
        }
        Failure::Refused(stage, a) if a.code >= 500 => Reply::new(
            550,
            &enhanced(a, 5, "5.0.0"),
            format!("internal server refused the mail ({stage}): {a}"),
        ),
        Failure::Refused(stage, a) => Reply::new(
            451,
            &enhanced(a, 4, "4.0.0"),
            format!("internal server said ({stage}): {a}; try again later"),
        ),
        Failure::Recipients { refused, total } => {
            let list = refused
                .iter()
                .take(3)
                .map(|(r, a)| format!("<{r}>: {a}"))
                .collect::<Vec<_>>()
                .join("; ");
            let more = refused.len().saturating_sub(3);
            let list = if more > 0 {
                format!("{list}; and {more} more")
            } else {
                list
            };
            let first = &refused[0].1;
            let all_permanent = refused.iter().all(|(_, a)| a.code >= 500);
            if refused.len() == *total && all_permanent {
                Reply::new(
                    550,
                    &enhanced(first, 5, "5.1.0"),
                    format!("internal server refused the recipient(s): {list}"),
                )
            } else {
                // Some recipients are fine, or the refusal is temporary: the sender keeps
                // the mail and retries, nobody misses it (module docs).
                let partly = if refused.len() < *total {
                    format!(
                        "{} of {total} recipients refused, so not accepted for any; ",
                        refused.len()
                    )
                } else {
                    String::new()
                };
                Reply::new(
                    451,
                    &enhanced(first, 4, "4.0.0"),
                    format!("internal server said: {partly}{list}; try again later"),
                )
            }
        }
        Failure::NotQueued(a) => Reply::new(
            451,
            "4.4.2",
            format!(
                "internal server answered {a} instead of 250 to the end of data; not taken as accepted, try again later"
            ),
        ),
        Failure::Unsupported(e) => Reply::new(550, "5.6.7", format!("cannot relay: {e}")),
        Failure::Local(e) => Reply::new(
            451,
            "4.3.0",
            format!("local error while relaying: {e}; try again later"),
        ),
    }
}

/// The enhanced status code (RFC 3463) at the start of `a.text`, in class `class` (a
/// 5.7.1 from the server becomes 4.7.1 when our reply is temporary); `default` if the
/// server gave none.
fn enhanced(a: &Answer, class: u8, default: &str) -> String {
    let first = a.text.split_whitespace().next().unwrap_or("");
    let mut parts = first.split('.');
    let ok = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let (c, subject, detail) = (parts.next(), parts.next(), parts.next());
    if matches!(c, Some("2" | "4" | "5"))
        && ok(subject, 3)
        && ok(detail, 3)
        && parts.next().is_none()
    {
        format!(
            "{class}.{}.{}",
            subject.unwrap_or("0"),
            detail.unwrap_or("0")
        )
    } else {
        default.to_owned()
    }
}

/// The internal server's text, bounded: a reply line has room for 512 octets.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.chars().count() <= MAX {
        text
    } else {
        let mut t: String = text.chars().take(MAX).collect();
        t.push_str("...");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(120);

    fn answer(code: u16, text: &str) -> Answer {
        Answer {
            code,
            text: text.to_owned(),
        }
    }

    fn r(f: Failure) -> Reply {
        reply("id1", &Err(f), T)
    }

    #[test]
    fn accepted_is_250_with_the_internal_text() {
        let rep = reply(
            "id1",
            &Ok(Accepted {
                text: "2.0.0 Ok: queued as 4XyZ".to_owned(),
            }),
            T,
        );
        assert_eq!((rep.code, rep.enhanced.as_str()), (250, "2.0.0"));
        assert!(rep.lines[0].contains("queued as 4XyZ"), "{rep}");
    }

    #[test]
    fn transport_failures_are_451_4_4_x() {
        let rep = r(Failure::Unreachable("connection refused".into()));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.4.1"));
        assert!(
            rep.lines[0].contains("internal server unavailable"),
            "{rep}"
        );
        let rep = r(Failure::Timeout(Stage::Connect));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.4.1"));
        let rep = r(Failure::Timeout(Stage::EndOfData));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.4.2"));
        assert!(rep.lines[0].contains("120 s"), "{rep}");
        let rep = r(Failure::Broken(Stage::Data, "connection reset".into()));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.4.2"));
    }

    #[test]
    fn transaction_5xx_is_550_with_the_internal_code_and_text() {
        let rep = r(Failure::Refused(
            Stage::EndOfData,
            answer(554, "5.7.1 Message content rejected"),
        ));
        assert_eq!((rep.code, rep.enhanced.as_str()), (550, "5.7.1"));
        assert!(
            rep.lines[0].contains("554 5.7.1 Message content rejected"),
            "{rep}"
        );
        let rep = r(Failure::Refused(Stage::Mail, answer(553, "sender bad")));
        assert_eq!((rep.code, rep.enhanced.as_str()), (550, "5.0.0"));
    }

    #[test]
    fn transaction_4xx_is_451_with_the_internal_text() {
        let rep = r(Failure::Refused(
            Stage::Mail,
            answer(452, "4.3.1 Insufficient system storage"),
        ));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.3.1"));
        assert!(
            rep.lines[0].contains("452 4.3.1 Insufficient system storage"),
            "{rep}"
        );
    }

    #[test]
    fn a_refused_session_is_temporary_even_with_5xx() {
        let rep = r(Failure::Refused(
            Stage::Greeting,
            answer(554, "5.7.1 go away"),
        ));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.7.1"));
    }

    #[test]
    fn every_recipient_refused_for_good_is_550() {
        let rep = r(Failure::Recipients {
            refused: vec![
                ("a@x.org".into(), answer(550, "5.1.1 User unknown")),
                ("b@x.org".into(), answer(550, "5.1.1 User unknown")),
            ],
            total: 2,
        });
        assert_eq!((rep.code, rep.enhanced.as_str()), (550, "5.1.1"));
        assert!(
            rep.lines[0].contains("<a@x.org>: 550 5.1.1 User unknown"),
            "{rep}"
        );
    }

    #[test]
    fn some_recipients_refused_is_451_for_all() {
        let rep = r(Failure::Recipients {
            refused: vec![("b@x.org".into(), answer(550, "5.1.1 User unknown"))],
            total: 3,
        });
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.1.1"));
        assert!(rep.lines[0].contains("1 of 3 recipients refused"), "{rep}");
        assert!(rep.lines[0].contains("<b@x.org>: 550"), "{rep}");
        // Temporary and permanent mixed, all refused: temporary wins.
        let rep = r(Failure::Recipients {
            refused: vec![
                ("a@x.org".into(), answer(450, "4.2.1 busy")),
                ("b@x.org".into(), answer(550, "5.1.1 unknown")),
            ],
            total: 2,
        });
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.2.1"));
    }

    #[test]
    fn long_lists_and_texts_are_bounded() {
        let refused = (0..10)
            .map(|i| (format!("u{i}@x.org"), answer(550, &"x".repeat(1000))))
            .collect();
        let rep = r(Failure::Recipients { refused, total: 20 });
        assert!(rep.to_wire().len() < 1000, "{}", rep.to_wire().len());
        assert!(rep.lines[0].contains("and 7 more"), "{rep}");
    }

    #[test]
    fn enhanced_codes_are_recognised_strictly() {
        assert_eq!(enhanced(&answer(550, "5.1.1 x"), 5, "d"), "5.1.1");
        assert_eq!(enhanced(&answer(550, "5.10.100 x"), 4, "d"), "4.10.100");
        assert_eq!(enhanced(&answer(550, "5.1 x"), 5, "d"), "d");
        assert_eq!(enhanced(&answer(550, "User unknown"), 5, "d"), "d");
        assert_eq!(enhanced(&answer(550, "7.1.1 x"), 5, "d"), "d");
        assert_eq!(enhanced(&answer(550, ""), 5, "d"), "d");
    }

    #[test]
    fn not_250_after_data_and_unsupported() {
        let rep = r(Failure::NotQueued(answer(251, "odd")));
        assert_eq!(rep.code, 451);
        let rep = r(Failure::Unsupported("no SMTPUTF8".into()));
        assert_eq!((rep.code, rep.enhanced.as_str()), (550, "5.6.7"));
        let rep = r(Failure::Local("bad address".into()));
        assert_eq!((rep.code, rep.enhanced.as_str()), (451, "4.3.0"));
    }
}
