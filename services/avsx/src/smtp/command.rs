//! SMTP command lines (without their CRLF) into [`Command`]s. No I/O and no state: what
//! a command means in the session's state is [`super::session`]'s business.

use super::address::{AddressError, parse_path};

/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets; an EHLO argument no more.
const MAX_HELO: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `from` is empty for the null sender.
    Mail {
        from: String,
        size: Option<u64>,
    },
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
}

/// Why a line is not a command avsx takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not an SMTP verb at all: 500.
    Unknown,
    /// A verb avsx knows but does not offer (EXPN, AUTH, BDAT...): 502.
    NotImplemented,
    /// Wrong arguments: 501, with the text.
    Syntax(&'static str),
    BadSender(AddressError),
    BadRecipient(AddressError),
    /// An ESMTP parameter avsx did not offer: 555.
    UnknownParameter,
}

pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // Commands are ASCII; anything else cannot be a verb or an argument avsx takes
    // (no SMTPUTF8 offered).
    let line = std::str::from_utf8(line)
        .ok()
        .filter(|l| l.bytes().all(|b| b == b'\t' || (32..=126).contains(&b)))
        .ok_or(ParseError::Syntax(
            "only printable ASCII is allowed in commands",
        ))?;
    // Trailing spaces are harmless and some clients send them.
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, args) = match line.split_once(' ') {
        Some((v, a)) => (v, a),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "HELO" => helo(args).map(Command::Helo),
        "EHLO" => helo(args).map(Command::Ehlo),
        "MAIL" => mail(args),
        "RCPT" => rcpt(args),
        "DATA" => no_args(args, Command::Data),
        "RSET" => no_args(args, Command::Rset),
        "QUIT" => no_args(args, Command::Quit),
        "STARTTLS" => no_args(args, Command::StartTls),
        // RFC 5321 4.1.1.9: NOOP may carry a string, to be ignored; HELP an argument.
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" if args.trim().is_empty() => Err(ParseError::Syntax("VRFY needs an argument")),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" | "AUTH" | "BDAT" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
            Err(ParseError::NotImplemented)
        }
        _ => Err(ParseError::Unknown),
    }
}

fn no_args(args: &str, command: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::Syntax("no arguments allowed"))
    }
}

/// One domain or address literal. Its syntax is not checked further: the name is
/// only recorded (and sanitised in the Received header), and refusing odd HELO
/// names loses real mail for no gain.
fn helo(args: &str) -> Result<String, ParseError> {
    if args.is_empty() {
        return Err(ParseError::Syntax("a domain name is required"));
    }
    if args.contains([' ', '\t']) || args.len() > MAX_HELO {
        return Err(ParseError::Syntax("expected one domain name"));
    }
    Ok(args.to_owned())
}

/// `FROM:<path> [params]`; RFC 5321 wants no space after the colon, but many clients
/// send one and it is unambiguous, so it is allowed.
fn after_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start_matches(' '))
}

fn mail(args: &str) -> Result<Command, ParseError> {
    let path =
        after_keyword(args, "FROM:").ok_or(ParseError::Syntax("expected MAIL FROM:<address>"))?;
    let (from, rest) = parse_path(path, false).map_err(ParseError::BadSender)?;
    let mut size = None;
    for param in params(rest)? {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => size = Some(size_value(value)?),
            "BODY" => {
                if !(value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME")) {
                    return Err(ParseError::Syntax("BODY must be 7BIT or 8BITMIME"));
                }
            }
            _ => return Err(ParseError::UnknownParameter),
        }
    }
    Ok(Command::Mail { from, size })
}

fn rcpt(args: &str) -> Result<Command, ParseError> {
    let path =
        after_keyword(args, "TO:").ok_or(ParseError::Syntax("expected RCPT TO:<address>"))?;
    let (to, rest) = parse_path(path, true).map_err(ParseError::BadRecipient)?;
    if to.is_empty() {
        return Err(ParseError::BadRecipient(AddressError::Empty));
    }
    // No RCPT parameters are offered (no DSN).
    if params(rest)?.next().is_some() {
        return Err(ParseError::UnknownParameter);
    }
    Ok(Command::Rcpt(to))
}

/// The parameters after the path: none, or a space and then space-separated `key[=value]`.
fn params(rest: &str) -> Result<impl Iterator<Item = &str>, ParseError> {
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(ParseError::Syntax("expected a space after the address"));
    }
    Ok(rest.split(' ').filter(|p| !p.is_empty()))
}

/// SIZE's value: digits; a number too large for u64 is simply too large (saturated).
fn size_value(v: &str) -> Result<u64, ParseError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax("SIZE must be a number"));
    }
    Ok(v.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            p("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            p("HeLo [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(p("noop"), Ok(Command::Noop));
        assert_eq!(p("NOOP anything"), Ok(Command::Noop));
        assert_eq!(p("data"), Ok(Command::Data));
        assert_eq!(p("StartTLS"), Ok(Command::StartTls));
        assert_eq!(p("QUIT  "), Ok(Command::Quit));
    }

    #[test]
    fn mail_with_parameters() {
        assert_eq!(
            p("MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "a@example.com".into(),
                size: Some(1000)
            })
        );
        assert_eq!(
            p("mail from: <>"),
            Ok(Command::Mail {
                from: String::new(),
                size: None
            })
        );
        assert_eq!(
            p("MAIL FROM:<a@example.com> SIZE=99999999999999999999999"),
            Ok(Command::Mail {
                from: "a@example.com".into(),
                size: Some(u64::MAX)
            })
        );
        assert!(matches!(
            p("MAIL FROM:<a@example.com> SIZE=x"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            p("MAIL FROM:<a@example.com> BODY=BINARYMIME"),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(
            p("MAIL FROM:<a@example.com> SMTPUTF8"),
            Err(ParseError::UnknownParameter)
        );
        assert!(matches!(
            p("MAIL FROM:<a@example.com>SIZE=1"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            p("MAIL TO:<a@example.com>"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            p("MAIL FROM:a@example.com"),
            Err(ParseError::BadSender(_))
        ));
    }

    #[test]
    fn rcpt() {
        assert_eq!(
            p("RCPT TO:<b@example.org>"),
            Ok(Command::Rcpt("b@example.org".into()))
        );
        assert_eq!(
            p("RCPT TO:<postmaster>"),
            Ok(Command::Rcpt("postmaster".into()))
        );
        assert_eq!(
            p("RCPT TO:<>"),
            Err(ParseError::BadRecipient(AddressError::Empty))
        );
        assert_eq!(
            p("RCPT TO:<b@example.org> NOTIFY=NEVER"),
            Err(ParseError::UnknownParameter)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(p("FOO"), Err(ParseError::Unknown));
        assert_eq!(p(""), Err(ParseError::Unknown));
        assert_eq!(p("EXPN staff"), Err(ParseError::NotImplemented));
        assert_eq!(p("AUTH PLAIN x"), Err(ParseError::NotImplemented));
        assert!(matches!(p("EHLO"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("EHLO a b"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("RSET x"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("VRFY"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"NOOP \x00"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse("EHLO h\u{e9}".as_bytes()),
            Err(ParseError::Syntax(_))
        ));
    }
}
