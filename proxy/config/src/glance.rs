//! Glance options the proxy reads for compatibility, in their own sections:
//! `[paste_deploy]`, `[oslo_concurrency]`, `[glance_store]` and
//! `[oslo_policy]`. They are validated like Glance validates
//! them, so a `glance-api.conf` that Glance would refuse is refused here
//! too, but the proxy does not act on them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::value::parse_python_int;

/// `[paste_deploy]`: Glance's WSGI pipeline. Read for compatibility.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasteDeployOptions {
    /// `flavor`: the pipeline Glance runs (`keystone`, `keystone+caching`,
    /// ...); `None` when unset or empty (Glance's `default` pipeline).
    pub flavor: Option<String>,
    /// `config_file`: the paste ini file; `None` when unset or empty (Glance
    /// derives it from the last config file).
    pub config_file: Option<PathBuf>,
}

/// `[oslo_concurrency]`. Read for compatibility.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsloConcurrencyOptions {
    /// `lock_path`: the directory of Glance's external locks; `None` when
    /// unset or empty (Glance's cache then uses `image_cache_dir`).
    pub lock_path: Option<PathBuf>,
}

/// `[glance_store]`: the filesystem store options. Read for compatibility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlanceStoreOptions {
    /// `filesystem_store_datadir`: the single store directory; `None` when
    /// set to the empty value. Default `/var/lib/glance/images`.
    pub filesystem_store_datadir: Option<PathBuf>,
    /// `filesystem_store_datadirs`: several store directories with
    /// priorities, in the order written. Default empty.
    pub filesystem_store_datadirs: Vec<StoreDir>,
}

impl Default for GlanceStoreOptions {
    fn default() -> Self {
        GlanceStoreOptions {
            filesystem_store_datadir: Some(PathBuf::from(DEFAULT_DATADIR)),
            filesystem_store_datadirs: Vec::new(),
        }
    }
}

/// glance_store's default `filesystem_store_datadir`.
pub(crate) const DEFAULT_DATADIR: &str = "/var/lib/glance/images";

/// One item of `filesystem_store_datadirs`: `path[:priority]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDir {
    /// The directory.
    pub path: PathBuf,
    /// Its priority (higher is preferred; 0 when not written).
    pub priority: i64,
}

/// `[oslo_policy]`: Glance's policy engine. Read for compatibility: the
/// proxy's own rules are in `[cache_policy]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsloPolicyOptions {
    /// `policy_file`. Default `policy.yaml`.
    pub policy_file: PathBuf,
    /// `enforce_new_defaults`. Default true (Glance's default).
    pub enforce_new_defaults: bool,
    /// `enforce_scope`. Default true (Glance's default).
    pub enforce_scope: bool,
}

impl Default for OsloPolicyOptions {
    fn default() -> Self {
        OsloPolicyOptions {
            policy_file: PathBuf::from("policy.yaml"),
            enforce_new_defaults: true,
            enforce_scope: true,
        }
    }
}

/// Parses glance_store's `path[:priority]` items, one per line of `text`
/// (every assignment of the option is one line). Like glance_store: the
/// priority follows the last `:`, is a Python integer, and defaults to 0;
/// the path must not be empty; a path listed twice with different
/// priorities is an error. Blank items and exact repeats are skipped.
pub(crate) fn parse_store_dirs(text: &str) -> Result<Vec<StoreDir>, String> {
    let mut dirs: Vec<StoreDir> = Vec::new();
    for (i, item) in text.split('\n').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let (path, priority) = match item.rsplit_once(':') {
            Some((path, priority)) if !priority.trim().is_empty() => {
                let priority = parse_python_int(priority)
                    .ok()
                    .and_then(|p| i64::try_from(p).ok())
                    .ok_or_else(|| {
                        format!(
                            "item {} ({item:?}): the priority after the last ':' must be an \
                             integer",
                            i + 1
                        )
                    })?;
                (path.trim(), priority)
            }
            Some((path, _)) => (path.trim(), 0),
            None => (item, 0),
        };
        if path.is_empty() {
            return Err(format!("item {} ({item:?}): empty directory", i + 1));
        }
        let path = PathBuf::from(path);
        match dirs.iter().find(|d| d.path == path) {
            Some(d) if d.priority == priority => continue,
            Some(d) => {
                return Err(format!(
                    "item {} ({item:?}): directory {} is already listed with priority {}",
                    i + 1,
                    path.display(),
                    d.priority
                ))
            }
            None => dirs.push(StoreDir { path, priority }),
        }
    }
    Ok(dirs)
}

/// Parses oslo.config's `Dict`: `name:value` pairs separated by commas,
/// both sides trimmed; the empty value is the empty dictionary. Names must
/// be unique and, like values, not empty.
pub(crate) fn parse_dict(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    for (i, pair) in text.split(',').enumerate() {
        let Some((name, value)) = pair.split_once(':') else {
            return Err(format!("pair {} ({:?}) has no ':'", i + 1, pair.trim()));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            return Err(format!(
                "pair {} ({:?}) has an empty name or type",
                i + 1,
                pair.trim()
            ));
        }
        if out.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(format!("{name} is listed twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str, priority: i64) -> StoreDir {
        StoreDir {
            path: path.into(),
            priority,
        }
    }

    #[test]
    fn store_dirs_like_glance_store() {
        assert_eq!(
            parse_store_dirs("/a:100\n /b : 2_0 \n/c\n/d:\n\n/e:-1"),
            Ok(vec![
                dir("/a", 100),
                dir("/b", 20),
                dir("/c", 0),
                dir("/d", 0),
                dir("/e", -1)
            ])
        );
        assert_eq!(parse_store_dirs(""), Ok(vec![]));
        assert_eq!(parse_store_dirs("/a:1\n/a:1"), Ok(vec![dir("/a", 1)]));
        let e = parse_store_dirs("/a:1\n/a:2").expect_err("different priorities");
        assert!(e.contains("already listed with priority 1"), "{e}");
        let e = parse_store_dirs("/x:high").expect_err("bad priority");
        assert!(e.starts_with("item 1 (\"/x:high\")"), "{e}");
        let e = parse_store_dirs("/ok\n:5").expect_err("empty path");
        assert!(e.contains("item 2"), "{e}");
    }

    #[test]
    fn dicts_like_oslo_config() {
        let d = parse_dict(" fast:rbd, local : file ").expect("parses");
        assert_eq!(
            d.into_iter().collect::<Vec<_>>(),
            vec![
                ("fast".to_owned(), "rbd".to_owned()),
                ("local".to_owned(), "file".to_owned())
            ]
        );
        assert_eq!(parse_dict("  "), Ok(BTreeMap::new()));
        assert!(parse_dict("fast").expect_err("no colon").contains("no ':'"));
        assert!(parse_dict("a:b,,c:d").is_err());
        assert!(parse_dict(":rbd").is_err());
        assert!(parse_dict("a:rbd,a:file")
            .expect_err("twice")
            .contains("listed twice"));
    }
}
