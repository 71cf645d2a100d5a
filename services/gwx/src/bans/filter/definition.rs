//! From a merged [`Config`] to the filter's final option strings, the way fail2ban's
//! filter reader computes them:
//!
//! 1. The `[Definition]` options fail2ban knows (`failregex`, `ignoreregex`,
//!    `prefregex`, `datepattern`, `journalmatch`, `maxlines`, `usedns`) are interpolated
//!    with the jail's options as variables; an option the jail sets itself is not read
//!    from the file at all.
//! 2. `[Init]` values (interpolated within `[Init]`) join the jail's options unless the
//!    jail sets them, and are also kept as `known/<name>`.
//! 3. `<name>` tags are substituted between all of these, recursively: a tag names one
//!    of them, else any `[Definition]`/`[DEFAULT]` option, else `section/option`
//!    (`<lt_<logtype>/__prefix_line>`). Tags that name nothing (`<HOST>`, `<F-USER>`)
//!    stay for the regex layer. That is how sshd's `mode = aggressive` selects
//!    `<mdre-aggressive>`.
//!
//! Note the two mechanisms differ in what they see: `%(mode)s` reads `[Definition]`'s
//! `mode` (or the jail's), `<mode>` prefers `[Init]`'s. We reproduce both.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::config::{Config, GetError, Vars};
use super::error::{FilterError, Origin};

/// The options of `[Definition]` a filter is made of.
pub(crate) const FILTER_OPTIONS: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// Replacing one tag more often than this within one option means a runaway recursion.
const MAX_TAG_REPLACE_COUNT: usize = 25;

/// A final option value and where it came from (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub text: String,
    pub origin: Origin,
}

/// The filter's final option values (after interpolation and tag substitution).
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    /// The file the filter was loaded from.
    pub path: PathBuf,
    pub options: HashMap<&'static str, Opt>,
}

impl Definition {
    pub fn get(&self, name: &str) -> Option<&Opt> {
        self.options.get(name)
    }

    /// The file to name in an error about `option`.
    pub fn origin_path(&self, option: &str) -> &Path {
        self.options
            .get(option)
            .map(|o| o.origin.path.as_path())
            .filter(|p| p.is_absolute() || p.exists())
            .unwrap_or(&self.path)
    }
}

/// Resolves the filter options of `config` with the jail's `options`.
pub(crate) fn resolve(
    config: &Config,
    path: &Path,
    options: &[(String, String)],
) -> Result<Definition, FilterError> {
    let jail_origin = Origin {
        path: path.to_path_buf(),
        line: 0,
    };
    let opt_err = |option: &str, origin: &Origin, message: String| FilterError::Option {
        path: if origin.line == 0 {
            path.to_path_buf()
        } else {
            origin.path.clone()
        },
        option: option.to_string(),
        message,
    };
    let interp_err = |option: &str, e: GetError| match e {
        GetError::Interpolation(m, origin) => opt_err(option, &origin, m),
        GetError::NoSection => opt_err(option, &jail_origin, "no such section".into()),
        GetError::NoOption => opt_err(option, &jail_origin, "no such option".into()),
    };

    // Tags keep insertion order, like the Python dict they mirror.
    let mut tags: Vec<(String, Opt)> = Vec::new();
    let set = |tags: &mut Vec<(String, Opt)>, key: &str, opt: Opt| match tags
        .iter_mut()
        .find(|(k, _)| k == key)
    {
        Some(slot) => slot.1 = opt,
        None => tags.push((key.to_string(), opt)),
    };

    let mut init: Vec<(String, Opt)> = options
        .iter()
        .map(|(k, v)| {
            let opt = Opt {
                text: v.clone(),
                origin: jail_origin.clone(),
            };
            (k.clone(), opt)
        })
        .collect();
    let vars: Vars = options
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();

    for name in FILTER_OPTIONS {
        if vars.contains_key(name) {
            continue;
        }
        match config.get("Definition", name, &vars) {
            Ok(v) => set(
                &mut tags,
                name,
                Opt {
                    text: v.text,
                    origin: v.origin,
                },
            ),
            Err(GetError::NoOption | GetError::NoSection) => {}
            Err(e) => return Err(interp_err(name, e)),
        }
    }
    if config.has_section("Init") {
        for key in config.own_options("Init") {
            let v = config
                .get("Init", &key, &Vars::new())
                .map_err(|e| interp_err(&key, e))?;
            let opt = Opt {
                text: v.text,
                origin: v.origin,
            };
            if !key.starts_with("known/") {
                set(&mut init, &format!("known/{key}"), opt.clone());
            }
            if !init.iter().any(|(k, _)| *k == key) {
                init.push((key, opt));
            }
        }
    }
    for (k, v) in init {
        set(&mut tags, &k, v);
    }

    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    let mut extra = |name: &str| -> Result<Option<String>, FilterError> {
        if let Some(v) = cache.get(name) {
            return Ok(v.clone());
        }
        let v = match config.get_ex("Definition", name, &vars) {
            Ok(v) => Some(v.text),
            Err(GetError::NoOption | GetError::NoSection) => None,
            Err(e) => return Err(interp_err(name, e)),
        };
        cache.insert(name.to_string(), v.clone());
        Ok(v)
    };
    substitute_tags(&mut tags, &mut extra).map_err(|(tag, message)| {
        let origin = tags
            .iter()
            .find(|(k, _)| *k == tag)
            .map(|(_, o)| o.origin.clone())
            .unwrap_or_else(|| jail_origin.clone());
        match message {
            TagError::Message(m) => opt_err(&tag, &origin, m),
            TagError::Filter(e) => e,
        }
    })?;

    let mut out = HashMap::new();
    for name in FILTER_OPTIONS {
        if let Some((_, opt)) = tags.iter().find(|(k, _)| k == name) {
            out.insert(name, opt.clone());
        }
    }
    Ok(Definition {
        path: path.to_path_buf(),
        options: out,
    })
}

pub(crate) enum TagError {
    Message(String),
    Filter(FilterError),
}

/// A `<name>` tag in `value` at or after `from`: (start, end, name).
pub(crate) fn find_tag(value: &str, from: usize) -> Option<(usize, usize, &str)> {
    let bytes = value.as_bytes();
    let mut i = from;
    while let Some(off) = value[i..].find('<') {
        let start = i + off;
        let mut j = start + 1;
        while j < bytes.len() && !matches!(bytes[j], b' ' | b'<' | b'>') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'>' && j > start + 1 {
            return Some((start, j + 1, &value[start + 1..j]));
        }
        i = start + 1;
    }
    None
}

/// Substitutes `<tag>` references between `tags` (in place), asking `extra` for names
/// that are not in `tags`. Unknown tags are left alone.
pub(crate) fn substitute_tags(
    tags: &mut [(String, Opt)],
    extra: &mut dyn FnMut(&str) -> Result<Option<String>, FilterError>,
) -> Result<(), (String, TagError)> {
    let mut done: HashSet<String> = HashSet::new();
    let mut counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    loop {
        let mut again = false;
        for i in 0..tags.len() {
            let tag = tags[i].0.clone();
            if done.contains(&tag) {
                continue;
            }
            let original = tags[i].1.text.clone();
            let mut value = original.clone();
            let mut replaced = counts.get(&tag).cloned().unwrap_or_default();
            let mut pos = 0;
            while let Some((start, end, name)) = find_tag(&value, pos) {
                let name = name.to_string();
                if name == tag || replaced.get(&name).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT
                {
                    return Err((
                        tag.clone(),
                        TagError::Message(format!(
                            "tag <{name}> refers to itself (directly or through other tags)"
                        )),
                    ));
                }
                let repl = match tags.iter().find(|(k, _)| *k == name) {
                    Some((_, o)) => Some(o.text.clone()),
                    None => extra(&name).map_err(|e| (tag.clone(), TagError::Filter(e)))?,
                };
                let Some(repl) = repl else {
                    pos = end;
                    continue;
                };
                value = value.replace(&format!("<{name}>"), &repl);
                *replaced.entry(name).or_insert(0) += 1;
                pos = start;
            }
            if value != original {
                if find_tag(&value, 0).is_some() {
                    counts.insert(tag.clone(), replaced);
                    again = true;
                }
                tags[i].1.text = value.clone();
            }
            if !value.contains('<') {
                done.insert(tag);
            }
        }
        if !again {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bans::filter::ini;

    fn def(texts: &[(&str, &str)], options: &[(&str, &str)]) -> Result<Definition, FilterError> {
        let files: Vec<_> = texts
            .iter()
            .map(|(p, t)| ini::parse(Path::new(p), t).unwrap())
            .collect();
        let config = Config::from_files(&files);
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&config, Path::new("x.conf"), &options)
    }

    const SSHD_LIKE: &str = "[DEFAULT]\n_daemon = sshd\n\
        [Init]\nmode = normal\nx = <mode>-x\n\
        [Definition]\nmode = defmode\n\
        mdre-normal = ^normal <HOST>\nmdre-aggressive = ^aggr <HOST>\n\
        failregex = ^%(_daemon)s <mdre-<mode>> <x> %(mode)s\n";

    #[test]
    fn init_tags_and_interpolation() {
        let d = def(&[("x.conf", SSHD_LIKE)], &[]).unwrap();
        assert_eq!(
            d.get("failregex").unwrap().text,
            "^sshd ^normal <HOST> normal-x defmode"
        );
        let d = def(&[("x.conf", SSHD_LIKE)], &[("mode", "aggressive")]).unwrap();
        assert_eq!(
            d.get("failregex").unwrap().text,
            "^sshd ^aggr <HOST> aggressive-x aggressive"
        );
    }

    #[test]
    fn jail_option_overrides_definition() {
        let d = def(&[("x.conf", SSHD_LIKE)], &[("failregex", "^mine <HOST>")]).unwrap();
        assert_eq!(d.get("failregex").unwrap().text, "^mine <HOST>");
    }

    #[test]
    fn section_tags() {
        let text = "[DEFAULT]\nlogtype = file\n__p = <lt_<logtype>/__p>\n\
                    [lt_file]\n__p = FILE\n[lt_journal]\n__p = JOURNAL\n\
                    [Definition]\nfailregex = ^%(__p)s <HOST>\n";
        let d = def(&[("x.conf", text)], &[]).unwrap();
        assert_eq!(d.get("failregex").unwrap().text, "^FILE <HOST>");
        let d = def(&[("x.conf", text)], &[("logtype", "journal")]).unwrap();
        assert_eq!(d.get("failregex").unwrap().text, "^JOURNAL <HOST>");
    }

    #[test]
    fn tag_loops_are_errors() {
        let text = "[Init]\na = <b>\nb = <a>\n[Definition]\nfailregex = <a>\n";
        let e = def(&[("x.conf", text)], &[]).unwrap_err().to_string();
        assert!(e.contains("refers to itself"), "{e}");
    }

    #[test]
    fn find_tag_syntax() {
        assert_eq!(find_tag("a <mdre-<mode>> b", 0), Some((8, 14, "mode")));
        assert_eq!(find_tag("<a b> <>", 0), None);
        assert_eq!(find_tag("x</F-USER>", 0), Some((1, 10, "/F-USER")));
    }
}
