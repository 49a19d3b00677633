//! Glance's command names: `glance-cache-pruner`, `glance-cache-cleaner`
//! and `glance-cache-prefetcher` as symlinks to this binary.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Glance's historical command names and the subcommand each one means.
pub(crate) const PROGRAM_NAMES: [(&str, &str); 3] = [
    ("glance-cache-pruner", "prune"),
    ("glance-cache-cleaner", "clean"),
    ("glance-cache-prefetcher", "prefetch"),
];

/// The subcommand that the program name `argv0` (a path or a bare name)
/// stands for: `prune` for `glance-cache-pruner`, `clean` for
/// `glance-cache-cleaner`, `prefetch` for `glance-cache-prefetcher`;
/// `None` for any other name, `glance-cache-proxy` included.
pub(crate) fn subcommand_for_program_name(argv0: &str) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    PROGRAM_NAMES
        .iter()
        .find(|(program, _)| *program == name)
        .map(|(_, subcommand)| *subcommand)
}

/// The command line clap should parse: unchanged, unless the binary was
/// invoked by one of Glance's names; then `glance-cache-pruner ARGS...`
/// becomes `glance-cache-proxy prune ARGS...` (and so on), so help and
/// errors name the real command.
pub(crate) fn args_for_program_name<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().collect();
    let subcommand = args
        .first()
        .and_then(|argv0| argv0.to_str())
        .and_then(subcommand_for_program_name);
    if let Some(subcommand) = subcommand {
        args[0] = "glance-cache-proxy".into();
        args.insert(1, subcommand.into());
    }
    args
}

/// Arguments of `install-links`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallLinksArgs {
    /// Directory to create the links in (for example /usr/local/bin).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Replace existing symlinks that point elsewhere (regular files, such
    /// as Glance's own scripts, are never replaced).
    #[arg(long)]
    force: bool,
}

/// What happened to one link.
enum Linked {
    Created,
    Kept,
    Replaced(PathBuf),
}

/// Creates the three links to the running binary; idempotent.
pub(crate) fn install(args: InstallLinksArgs) -> anyhow::Result<()> {
    let target = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .context("cannot find the path of the running binary")?;
    let dir = &args.dir;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot create links in {}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("cannot create links in {}: not a directory", dir.display());
    }
    let mut failed = Vec::new();
    for (name, _) in PROGRAM_NAMES {
        let link = dir.join(name);
        match link_to(&link, &target, args.force) {
            Ok(Linked::Created) => println!("created {} -> {}", link.display(), target.display()),
            Ok(Linked::Kept) => println!("kept {} -> {}", link.display(), target.display()),
            Ok(Linked::Replaced(old)) => println!(
                "replaced {} -> {} (was -> {})",
                link.display(),
                target.display(),
                old.display()
            ),
            Err(e) => {
                eprintln!("glance-cache-proxy: {e:#}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("could not create {}", failed.join(", "));
    }
    Ok(())
}

/// Makes `link` a symlink to `target`, unless it is one already.
fn link_to(link: &Path, target: &Path, force: bool) -> anyhow::Result<Linked> {
    let existing = match std::fs::symlink_metadata(link) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", link.display())),
    };
    let Some(meta) = existing else {
        std::os::unix::fs::symlink(target, link)
            .with_context(|| format!("cannot create {}", link.display()))?;
        return Ok(Linked::Created);
    };
    if !meta.file_type().is_symlink() {
        anyhow::bail!(
            "{} exists and is not a symlink (Glance's own command?); not replaced: \
             remove it first if it should run this binary",
            link.display()
        );
    }
    let old = std::fs::read_link(link)
        .with_context(|| format!("cannot read the symlink {}", link.display()))?;
    let resolved = link
        .parent()
        .map(|dir| dir.join(&old))
        .unwrap_or_else(|| old.clone());
    if old == target || resolved.canonicalize().is_ok_and(|p| p == target) {
        return Ok(Linked::Kept);
    }
    if !force {
        anyhow::bail!(
            "{} already links to {}, not to {}; use --force to replace it",
            link.display(),
            old.display(),
            target.display()
        );
    }
    // Replace atomically: a new link beside it, renamed over the old one.
    let file_name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = link.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    if let Err(e) = std::fs::rename(&temp, link) {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot replace {}", link.display()));
    }
    Ok(Linked::Replaced(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names() {
        assert_eq!(
            subcommand_for_program_name("glance-cache-pruner"),
            Some("prune")
        );
        assert_eq!(
            subcommand_for_program_name("/usr/bin/glance-cache-cleaner"),
            Some("clean")
        );
        assert_eq!(
            subcommand_for_program_name("./glance-cache-prefetcher"),
            Some("prefetch")
        );
        assert_eq!(subcommand_for_program_name("glance-cache-proxy"), None);
        assert_eq!(
            subcommand_for_program_name("/opt/glance-cache-pruner/x"),
            None
        );
        assert_eq!(subcommand_for_program_name(""), None);
    }

    #[test]
    fn args_get_the_subcommand() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            args_for_program_name(args(&[
                "/usr/bin/glance-cache-pruner",
                "--config-file",
                "a"
            ])),
            args(&["glance-cache-proxy", "prune", "--config-file", "a"])
        );
        assert_eq!(
            args_for_program_name(args(&["glance-cache-proxy", "serve"])),
            args(&["glance-cache-proxy", "serve"])
        );
        assert!(args_for_program_name(Vec::new()).is_empty());
    }
}
