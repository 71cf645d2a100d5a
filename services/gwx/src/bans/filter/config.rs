//! A filter's configuration as fail2ban assembles it from several files: the main file
//! (`X.conf`, `X.d/*.conf`, `X.local`, `X.d/*.local`), the files they include through
//! `[INCLUDES] before`/`after` (each with its own `.local`), merged in that order, plus
//! `%(name)s` interpolation.
//!
//! Merging keeps, for a section a later file overrides, the values it replaced in a
//! section named `KNOWN/<section>`: that is what `%(known/failregex)s` and
//! `<known/failregex>` read, so a `.local` file can extend the `.conf` file's regexes
//! instead of repeating them.
//!
//! Interpolation is Python's `BasicInterpolation` with fail2ban's additions: a name is
//! looked up in the caller's variables (the jail's options), then the section, then
//! `[DEFAULT]`; `%(section/option)s` reads another section (`known/` reads the
//! overridden values, `default/` the defaults); `%%` is a percent sign; more than 10
//! nested levels (in practice a loop) is an error.
//!
//! Departure from fail2ban, on purpose: an include that does not exist is an error
//! naming the includer (fail2ban silently skips it), except for `.local` files, which
//! are optional overrides by convention (`common.conf` names `common.local`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{FilterError, Origin};
use super::ini::{self, DEFAULT_SECTION, IniFile};

const INCLUDES_SECTION: &str = "INCLUDES";
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// A raw option value and where it was set.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub text: String,
    pub origin: Origin,
}

/// Variables that take precedence over section values during interpolation (the jail's
/// options). Keys are lowercased.
pub(crate) type Vars = HashMap<String, String>;

/// The merged configuration of a filter file and everything it includes.
#[derive(Debug, Default)]
pub(crate) struct Config {
    defaults: HashMap<String, Value>,
    sections: HashMap<String, HashMap<String, Value>>,
    /// The files read, in merge order.
    pub files: Vec<PathBuf>,
}

/// Why a value could not be produced.
#[derive(Debug)]
pub(crate) enum GetError {
    NoSection,
    NoOption,
    /// Interpolation failed; the origin is the value whose interpolation failed.
    Interpolation(String, Origin),
}

impl Config {
    /// Loads `path` (a `.conf` or `.local` file, or any file) with its companions and
    /// includes.
    pub fn load(path: &Path) -> Result<Config, FilterError> {
        if !path.is_file() {
            return Err(FilterError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let mut main = vec![path.to_path_buf()];
        let dropin = path.with_extension("d");
        main.extend(sorted_glob(&dropin, "conf"));
        let local = path.with_extension("local");
        if local != path && local.is_file() {
            main.push(local);
        }
        main.extend(sorted_glob(&dropin, "local"));

        let mut loader = Loader::default();
        let mut order = Vec::new();
        loader.includes(&main, &[], &mut order)?;
        let mut config = Config::default();
        for file in &order {
            let parsed = loader.parsed[file].clone();
            config.merge(&parsed);
            config.files.push(file.clone());
        }
        Ok(config)
    }

    /// Builds a configuration from one parsed file (tests, and `from_regex`).
    #[cfg(test)]
    pub fn from_files(files: &[IniFile]) -> Config {
        let mut config = Config::default();
        for f in files {
            config.merge(f);
            config.files.push(f.path.clone());
        }
        config
    }

    fn merge(&mut self, file: &IniFile) {
        for section in &file.sections {
            let values: HashMap<String, Value> = section
                .options
                .iter()
                .map(|o| {
                    let origin = Origin {
                        path: file.path.clone(),
                        line: o.line,
                    };
                    (
                        o.key.clone(),
                        Value {
                            text: o.value.clone(),
                            origin,
                        },
                    )
                })
                .collect();
            if section.name == DEFAULT_SECTION {
                self.defaults.extend(values);
                continue;
            }
            match self.sections.get_mut(&section.name) {
                Some(existing) => {
                    let replaced: Vec<(String, Value)> = values
                        .keys()
                        .filter_map(|k| existing.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    existing.extend(values);
                    self.sections
                        .entry(format!("KNOWN/{}", section.name))
                        .or_default()
                        .extend(replaced);
                }
                None => {
                    self.sections.insert(section.name.clone(), values);
                }
            }
        }
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// The section's own option names (without `[DEFAULT]`'s), sorted.
    pub fn own_options(&self, section: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .sections
            .get(section)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// `configparser.get(section, key, vars=vars)`: the interpolated value.
    pub fn get(&self, section: &str, key: &str, vars: &Vars) -> Result<Value, GetError> {
        let key = key.to_lowercase();
        let own = if section == DEFAULT_SECTION {
            None
        } else {
            Some(self.sections.get(section).ok_or(GetError::NoSection)?)
        };
        let raw = if let Some(v) = vars.get(&key) {
            Value {
                text: v.clone(),
                origin: Origin {
                    path: PathBuf::from("<jail options>"),
                    line: 0,
                },
            }
        } else if let Some(v) = own
            .and_then(|s| s.get(&key))
            .or_else(|| self.defaults.get(&key))
        {
            v.clone()
        } else {
            return Err(GetError::NoOption);
        };
        let mut out = String::new();
        self.interpolate(section, &raw.text, vars, 1, &mut out)
            .map_err(|m| GetError::Interpolation(m, raw.origin.clone()))?;
        Ok(Value {
            text: out,
            origin: raw.origin,
        })
    }

    /// fail2ban's `get_ex`: like [`Config::get`] but `section/option` names read
    /// another section (`known/option`: the value this file's section overrode, else the
    /// section's own; `default/option`: `[DEFAULT]`).
    pub fn get_ex(&self, section: &str, key: &str, vars: &Vars) -> Result<Value, GetError> {
        if let Some((sec, opt)) = split_section_option(key) {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec![DEFAULT_SECTION.to_string()],
                _ => vec![sec.to_string()],
            };
            for candidate in candidates {
                match self.get(&candidate, opt, &Vars::new()) {
                    Ok(v) => return Ok(v),
                    Err(GetError::NoSection | GetError::NoOption) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.get(section, key, vars)
    }

    /// Expands `%(name)s` and `%%` in `rest`, looking names up as seen from `section`.
    fn interpolate(
        &self,
        section: &str,
        mut rest: &str,
        vars: &Vars,
        depth: usize,
        out: &mut String,
    ) -> Result<(), String> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(format!(
                "interpolation nested more than {MAX_INTERPOLATION_DEPTH} levels deep \
                 (a `%(name)s` loop?) at `{rest}`"
            ));
        }
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%(") {
                let close = r
                    .find(')')
                    .filter(|&c| c > 0 && r[c + 1..].starts_with('s'));
                let Some(close) = close else {
                    return Err(format!("bad interpolation reference `{rest}`"));
                };
                let name = &r[..close];
                rest = &r[close + 2..];
                let value = self
                    .lookup(section, name, vars)
                    .ok_or_else(|| format!("`%({name})s` names no option"))?;
                if value.contains('%') {
                    self.interpolate(section, &value, vars, depth + 1, out)?;
                } else {
                    out.push_str(&value);
                }
            } else {
                return Err(format!(
                    "`%` must be followed by `%` or `(`, found `{rest}`"
                ));
            }
        }
        out.push_str(rest);
        Ok(())
    }

    /// The raw value `%(name)s` refers to from `section`.
    fn lookup(&self, section: &str, name: &str, vars: &Vars) -> Option<String> {
        let key = name.to_lowercase();
        if let Some(v) = vars.get(&key) {
            return Some(v.clone());
        }
        if let Some(v) = self.sections.get(section).and_then(|s| s.get(&key)) {
            return Some(v.text.clone());
        }
        if let Some(v) = self.defaults.get(&key) {
            return Some(v.text.clone());
        }
        let (sec, opt) = split_section_option(name)?;
        let opt = opt.to_lowercase();
        let from = match sec.to_lowercase().as_str() {
            "default" => None,
            "known" => self
                .sections
                .get(&format!("KNOWN/{section}"))
                .and_then(|s| s.get(&opt)),
            _ => {
                let s = self.sections.get(sec)?;
                s.get(&opt)
            }
        };
        from.or_else(|| self.defaults.get(&opt))
            .map(|v| v.text.clone())
    }
}

/// `section/option` with a section name of word characters and dashes.
fn split_section_option(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let sec_ok = !sec.is_empty()
        && sec
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let opt_ok = !opt.is_empty() && !opt.contains(|c: char| c.is_whitespace() || c == '>');
    (sec_ok && opt_ok).then_some((sec, opt))
}

fn sorted_glob(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
        .collect();
    files.sort();
    files
}

/// Resolves includes, parsing every file once.
#[derive(Default)]
struct Loader {
    parsed: HashMap<PathBuf, IniFile>,
}

impl Loader {
    /// fail2ban's include order for a list of files: each file (and its `.local`), with
    /// its `before` includes ahead of it and its `after` includes behind it.
    fn includes(
        &mut self,
        files: &[PathBuf],
        ancestors: &[PathBuf],
        order: &mut Vec<PathBuf>,
    ) -> Result<(), FilterError> {
        let mut expanded: Vec<PathBuf> = Vec::new();
        for f in files {
            expanded.push(f.clone());
            let local = f.with_extension("local");
            if !files.contains(&local) && local.is_file() {
                expanded.push(local);
            }
        }
        for file in expanded {
            self.include_one(&file, ancestors, order)?;
        }
        Ok(())
    }

    fn include_one(
        &mut self,
        file: &Path,
        ancestors: &[PathBuf],
        order: &mut Vec<PathBuf>,
    ) -> Result<(), FilterError> {
        if !self.parsed.contains_key(file) {
            let parsed = ini::read(file)?;
            self.parsed.insert(file.to_path_buf(), parsed);
        }
        let parsed = &self.parsed[file];
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut lists: [Vec<PathBuf>; 2] = [Vec::new(), Vec::new()];
        if let Some(inc) = parsed.section(INCLUDES_SECTION) {
            for (slot, key) in ["before", "after"].iter().enumerate() {
                let Some(opt) = inc.get(key) else { continue };
                for entry in opt.value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    lists[slot].push(dir.join(entry));
                }
            }
        }
        let mut chain = ancestors.to_vec();
        chain.push(file.to_path_buf());
        let mut resolved: [Vec<PathBuf>; 2] = [Vec::new(), Vec::new()];
        for (slot, list) in lists.iter().enumerate() {
            for inc in list {
                if chain.contains(inc) {
                    tracing::debug!(file = %file.display(), include = %inc.display(), "include loop skipped");
                    continue;
                }
                if !inc.is_file() {
                    if inc.extension().is_some_and(|e| e == "local") {
                        continue;
                    }
                    return Err(FilterError::MissingInclude {
                        includer: file.to_path_buf(),
                        missing: inc.clone(),
                    });
                }
                self.includes(std::slice::from_ref(inc), &chain, &mut resolved[slot])?;
            }
        }
        let [before, after] = resolved;
        order.extend(before);
        order.push(file.to_path_buf());
        order.extend(after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(texts: &[(&str, &str)]) -> Config {
        let files: Vec<IniFile> = texts
            .iter()
            .map(|(p, t)| ini::parse(Path::new(p), t).unwrap())
            .collect();
        Config::from_files(&files)
    }

    fn get(c: &Config, s: &str, k: &str) -> String {
        c.get(s, k, &Vars::new())
            .map(|v| v.text)
            .unwrap_or_else(|e| format!("{e:?}"))
    }

    #[test]
    fn interpolation_precedence_and_percent() {
        let c = cfg(&[(
            "a.conf",
            "[DEFAULT]\na = A%(b)s\nb = B%(c)s\nc = C\nx = default\n\
             [Definition]\nv = %(a)s %(x)s 50%%\nx = section\n",
        )]);
        assert_eq!(get(&c, "Definition", "v"), "ABC section 50%");
        let vars: Vars = [("x".to_string(), "var".to_string())].into();
        assert_eq!(c.get("Definition", "v", &vars).unwrap().text, "ABC var 50%");
        assert_eq!(get(&c, "DEFAULT", "a"), "ABC");
    }

    #[test]
    fn section_and_known_references() {
        let c = cfg(&[
            (
                "common.conf",
                "[lt_file]\ndp = {^LN-BEG}\n[lt_journal]\ndp = %(lt_file/dp)s\n\
                 [Definition]\nfailregex = ^one\n",
            ),
            (
                "x.conf",
                "[Definition]\nfailregex = %(known/failregex)s\n            ^two\n",
            ),
        ]);
        assert_eq!(get(&c, "Definition", "failregex"), "^one\n^two");
        assert_eq!(get(&c, "lt_journal", "dp"), "{^LN-BEG}");
        assert_eq!(
            c.get_ex("Definition", "lt_journal/dp", &Vars::new())
                .unwrap()
                .text,
            "{^LN-BEG}"
        );
        assert_eq!(
            c.get_ex("Definition", "known/failregex", &Vars::new())
                .unwrap()
                .text,
            "^one"
        );
    }

    #[test]
    fn interpolation_errors() {
        let c = cfg(&[(
            "a.conf",
            "[S]\na = %(b)s\nb = %(a)s\nm = %(nope)s\np = 5%\n",
        )]);
        let loop_err = get(&c, "S", "a");
        assert!(loop_err.contains("more than 10 levels"), "{loop_err}");
        assert!(get(&c, "S", "m").contains("`%(nope)s` names no option"));
        assert!(get(&c, "S", "p").contains("must be followed"));
        assert!(matches!(
            c.get("Nope", "a", &Vars::new()),
            Err(GetError::NoSection)
        ));
        assert!(matches!(
            c.get("S", "zz", &Vars::new()),
            Err(GetError::NoOption)
        ));
    }
}
