//! Every reply the SMTP front gives of its own (the backend's RCPT and DATA replies
//! pass through as they are), in one place so the codes are chosen once:
//!
//! | situation                                  | reply         |
//! |--------------------------------------------|---------------|
//! | unknown command                            | 500 5.5.1     |
//! | command line too long / bare CR or LF in it| 500 5.5.2     |
//! | bad arguments                              | 501 5.5.4     |
//! | bad sender / recipient address             | 501 5.1.7 / 501 5.1.3 |
//! | known but not offered (EXPN, AUTH, ...)    | 502 5.5.1     |
//! | bad sequence                               | 503 5.5.1     |
//! | ESMTP parameter not offered                | 555 5.5.4     |
//! | SIZE= or message over the limit            | 552 5.3.4     |
//! | too many recipients                        | 452 4.5.3     |
//! | DATA without accepted recipients           | 554 5.5.1     |
//! | bare CR or LF in the message               | 554 5.6.0     |
//! | text line over max_line_bytes              | 554 5.6.0     |
//! | too many errors                            | 421 4.7.0     |
//! | too many connections (total or per IP)     | 421 4.7.0     |
//! | command or DATA timeout                    | 421 4.4.2     |
//! | shutting down                              | 421 4.3.2     |
//!
//! A message with long lines gets 554 5.6.0 like one with bare newlines: both are
//! content the next hop may mangle, a permanent refusal of this message (RFC 3463
//! X.6.0, media error); 552 5.3.4 would wrongly say "too large", and 500 answers a
//! command, not a message. The greeting and the HELO/EHLO replies carry no enhanced
//! code (RFC 2034).

use crate::envelope::Reply;

pub fn greeting(host: &str) -> Reply {
    Reply::new(220, "", format!("{host} ESMTP avsx"))
}

pub fn helo(host: &str) -> Reply {
    Reply::new(250, "", host)
}

pub fn ehlo(host: &str, max_size: u64, starttls: bool) -> Reply {
    let mut lines = vec![
        host.to_owned(),
        "PIPELINING".to_owned(),
        format!("SIZE {max_size}"),
        "8BITMIME".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
    ];
    if starttls {
        lines.push("STARTTLS".to_owned());
    }
    Reply {
        code: 250,
        enhanced: String::new(),
        lines,
    }
}

pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "OK")
}

pub fn sender_ok() -> Reply {
    Reply::new(250, "2.1.0", "sender OK")
}

pub fn start_data() -> Reply {
    Reply::new(354, "", "end data with <CR><LF>.<CR><LF>")
}

pub fn quit(host: &str) -> Reply {
    Reply::new(221, "2.0.0", format!("{host} closing connection"))
}

/// RFC 5321 3.5.3: 252 neither confirms nor denies, so VRFY tells nothing about who
/// exists.
pub fn vrfy() -> Reply {
    Reply::new(
        252,
        "2.5.0",
        "cannot VRFY user; send mail and it will be delivered or refused",
    )
}

pub fn help() -> Reply {
    Reply::new(
        214,
        "2.0.0",
        "commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS",
    )
}

pub fn start_tls() -> Reply {
    Reply::new(220, "2.0.0", "ready to start TLS")
}

pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.1", "unknown command")
}

pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "line too long")
}

pub fn bare_newline_in_command() -> Reply {
    Reply::new(500, "5.5.2", "bare LF/CR not allowed; end lines with CRLF")
}

pub fn syntax(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}

pub fn bad_sender(text: &str) -> Reply {
    Reply::new(501, "5.1.7", format!("bad sender address: {text}"))
}

pub fn bad_recipient(text: &str) -> Reply {
    Reply::new(501, "5.1.3", format!("bad recipient address: {text}"))
}

pub fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "command not implemented")
}

pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}

pub fn unknown_parameter() -> Reply {
    Reply::new(555, "5.5.4", "parameter not supported")
}

pub fn too_big(max: u64) -> Reply {
    Reply::new(
        552,
        "5.3.4",
        format!("message size exceeds fixed maximum of {max} bytes"),
    )
}

pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "too many recipients")
}

pub fn no_recipients() -> Reply {
    Reply::new(554, "5.5.1", "no valid recipients")
}

pub fn bare_newline_in_data() -> Reply {
    Reply::new(554, "5.6.0", "bare LF/CR not allowed; message refused")
}

pub fn data_line_too_long(max: usize) -> Reply {
    Reply::new(
        554,
        "5.6.0",
        format!("line longer than {max} octets; message refused"),
    )
}

pub fn too_many_errors(host: &str) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{host} too many errors, closing connection"),
    )
}

pub fn too_many_connections() -> Reply {
    Reply::new(421, "4.7.0", "too many connections")
}

pub fn timeout(host: &str) -> Reply {
    Reply::new(421, "4.4.2", format!("{host} timeout, closing connection"))
}

pub fn shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        "4.3.2",
        format!("{host} shutting down, try again later"),
    )
}
