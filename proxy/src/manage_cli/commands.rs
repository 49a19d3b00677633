//! Running one command the way `glance-cache-manage` does: check the image
//! id, ask for confirmation, authenticate, make the one request, print.

use std::io::Write;
use std::time::Instant;

use anyhow::anyhow;
use http::Method;
use serde_json::{json, Value};

use super::auth::Credentials;
use super::client::{Answer, CallError, ManageClient};
use super::isotime::iso8601_utc;
use super::options::{CommonArgs, Format};
use super::prompt;
use super::table::{Align, Table};
use super::ManageCommand;

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ListCached,
    ListQueued,
    QueueImage,
    DeleteCachedImage,
    DeleteAllCachedImages,
    DeleteQueuedImage,
    DeleteAllQueuedImages,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ListCached => "list-cached",
            Kind::ListQueued => "list-queued",
            Kind::QueueImage => "queue-image",
            Kind::DeleteCachedImage => "delete-cached-image",
            Kind::DeleteAllCachedImages => "delete-all-cached-images",
            Kind::DeleteQueuedImage => "delete-queued-image",
            Kind::DeleteAllQueuedImages => "delete-all-queued-images",
        }
    }

    /// Glance's words for `"Failed to <action>. Got error:"`.
    fn action(self) -> &'static str {
        match self {
            Kind::ListCached => "show cached images",
            Kind::ListQueued => "show queued images",
            Kind::QueueImage => "queue the specified image for caching",
            Kind::DeleteCachedImage => "delete the specified cached image",
            Kind::DeleteAllCachedImages => "delete all cached images",
            Kind::DeleteQueuedImage => "delete the specified queued image",
            Kind::DeleteAllQueuedImages => "delete all queued images",
        }
    }

    fn takes_id(self) -> bool {
        matches!(
            self,
            Kind::QueueImage | Kind::DeleteCachedImage | Kind::DeleteQueuedImage
        )
    }

    /// The confirmation question of a mutating command.
    fn question(self, id: &str) -> Option<String> {
        match self {
            Kind::ListCached | Kind::ListQueued => None,
            Kind::QueueImage => Some(format!("Queue image {id} for caching?")),
            Kind::DeleteCachedImage => Some(format!("Delete cached image {id}?")),
            Kind::DeleteAllCachedImages => Some("Delete all cached images?".to_owned()),
            Kind::DeleteQueuedImage => Some(format!("Delete queued image {id}?")),
            Kind::DeleteAllQueuedImages => Some("Delete all queued images?".to_owned()),
        }
    }

    fn request(self, id: &str) -> (Method, String) {
        match self {
            Kind::ListCached => (Method::GET, "/v2/cached_images".into()),
            Kind::ListQueued => (Method::GET, "/v2/queued_images".into()),
            Kind::QueueImage => (Method::PUT, format!("/v2/queued_images/{id}")),
            Kind::DeleteCachedImage => (Method::DELETE, format!("/v2/cached_images/{id}")),
            Kind::DeleteAllCachedImages => (Method::DELETE, "/v2/cached_images".into()),
            Kind::DeleteQueuedImage => (Method::DELETE, format!("/v2/queued_images/{id}")),
            Kind::DeleteAllQueuedImages => (Method::DELETE, "/v2/queued_images".into()),
        }
    }
}

/// One command with its arguments.
struct Job {
    kind: Kind,
    ids: Vec<String>,
    force: bool,
    common: CommonArgs,
}

impl From<ManageCommand> for Job {
    fn from(command: ManageCommand) -> Self {
        let (kind, ids, force, common) = match command {
            ManageCommand::ListCached(a) => (Kind::ListCached, Vec::new(), false, a.common),
            ManageCommand::ListQueued(a) => (Kind::ListQueued, Vec::new(), false, a.common),
            ManageCommand::QueueImage(a) => (Kind::QueueImage, a.ids, a.force, a.common),
            ManageCommand::DeleteCachedImage(a) => {
                (Kind::DeleteCachedImage, a.ids, a.force, a.common)
            }
            ManageCommand::DeleteAllCachedImages(a) => {
                (Kind::DeleteAllCachedImages, Vec::new(), a.force, a.common)
            }
            ManageCommand::DeleteQueuedImage(a) => {
                (Kind::DeleteQueuedImage, a.ids, a.force, a.common)
            }
            ManageCommand::DeleteAllQueuedImages(a) => {
                (Kind::DeleteAllQueuedImages, Vec::new(), a.force, a.common)
            }
        };
        Job {
            kind,
            ids,
            force,
            common,
        }
    }
}

/// Runs `command`. `Ok` means exit status 0 (also for a refused
/// confirmation); an error is one line for stderr and exit status 1.
pub(crate) async fn run(command: ManageCommand) -> anyhow::Result<()> {
    let job = Job::from(command);
    let started = Instant::now();
    let result = job.execute().await;
    if job.common.verbose {
        job.note(&format!(
            "Completed in {:.4} sec.",
            started.elapsed().as_secs_f64()
        ))?;
    }
    result
}

impl Job {
    fn json(&self) -> bool {
        self.common.format == Format::Json
    }

    async fn execute(&self) -> anyhow::Result<()> {
        let id = if self.kind.takes_id() {
            self.image_id()?
        } else {
            String::new()
        };
        let client = ManageClient::new(&self.common.host, self.common.port, &self.common.tls())
            .map_err(|e| self.failed(&e))?;
        if let Some(question) = self.kind.question(&id) {
            if !self.force && !prompt::confirm(question).await {
                if self.json() {
                    emit(&json!({ "cancelled": true }).to_string())?;
                }
                return Ok(());
            }
        }
        let debug = self.common.debug;
        let credentials = self
            .common
            .auth
            .credentials()
            .map_err(|e| self.failed(&e))?
            .with_tls(self.common.tls());
        let token = credentials
            .token(debug)
            .await
            .map_err(|e| self.failed(&e))?;
        let client = client
            .with_token(token.as_deref())
            .map_err(|e| self.failed(&e))?
            .with_debug(debug);
        let (method, path) = self.kind.request(&id);
        let answer = client
            .call(method, &path)
            .await
            .map_err(|e| self.call_failed(e, &client, &credentials))?;
        self.output(&id, &answer)
    }

    /// The one image id, as a canonical lower-case UUID.
    fn image_id(&self) -> anyhow::Result<String> {
        let [raw] = self.ids.as_slice() else {
            return Err(anyhow!(
                "Please specify the ID of the image you wish for command '{}' from the cache \
                 as the first and only argument.",
                self.kind.name()
            ));
        };
        canonical_uuid(raw).ok_or_else(|| {
            let shown: String = raw.chars().take(100).collect();
            anyhow!("Image ID '{shown}' is not a valid UUID.")
        })
    }

    fn failed(&self, e: &dyn std::fmt::Display) -> anyhow::Error {
        anyhow!("Failed to {}. Got error: {e}", self.kind.action())
    }

    fn call_failed(
        &self,
        e: CallError,
        client: &ManageClient,
        credentials: &Credentials,
    ) -> anyhow::Error {
        let address = client.address();
        match e {
            CallError::NotFound => anyhow!(
                "Cache management middleware not enabled on host {} (404 Not Found from \
                 {address}: is image_cache_dir set on the proxy?)",
                self.common.host
            ),
            CallError::Unauthorized => anyhow!(
                "Not authenticated (401 Unauthorized from {address}): {}",
                credentials.unauthenticated_reason()
            ),
            CallError::Forbidden => anyhow!("Not authorized to make this request."),
            CallError::Connect { address, reason } => anyhow!(
                "cannot connect to the proxy at {address}: {reason} (is glance-cache-proxy \
                 running there? see --host and --port)"
            ),
            other => self.failed(&other),
        }
    }

    /// Prints the result of a successful call.
    fn output(&self, id: &str, answer: &Answer) -> anyhow::Result<()> {
        match self.kind {
            Kind::ListCached => {
                let images = self.list(answer, "cached_images")?;
                if self.json() {
                    return emit_raw(answer);
                }
                let remote = answer
                    .json
                    .get("remote_images")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if images.is_empty() && remote.is_empty() {
                    return emit("No cached images.");
                }
                emit(&cached_listing(images, remote))
            }
            Kind::ListQueued => {
                let images = self.list(answer, "queued_images")?;
                if self.json() {
                    return emit_raw(answer);
                }
                if images.is_empty() {
                    return emit("No queued images.");
                }
                let mut table = Table::new(&[("ID", Align::Center)]);
                for image in images {
                    table.add_row(vec![text(image)]);
                }
                emit(&format!(
                    "Found {} queued images...\n{}",
                    images.len(),
                    table.render()
                ))
            }
            Kind::QueueImage => self.done(
                json!({ "image_id": id, "queued": true }),
                &format!("Queued image {id} for caching"),
            ),
            Kind::DeleteCachedImage => self.done(
                json!({ "image_id": id, "deleted": true }),
                &format!("Deleted cached image {id}"),
            ),
            Kind::DeleteQueuedImage => self.done(
                json!({ "image_id": id, "deleted": true }),
                &format!("Deleted queued image {id}"),
            ),
            Kind::DeleteAllCachedImages | Kind::DeleteAllQueuedImages => {
                let Some(n) = answer.json.get("num_deleted").filter(|n| n.is_number()) else {
                    return Err(self.unexpected(answer));
                };
                if self.json() {
                    emit_raw(answer)?;
                }
                let what = if self.kind == Kind::DeleteAllCachedImages {
                    "cached"
                } else {
                    "queued"
                };
                self.note(&format!("Deleted {n} {what} images"))
            }
        }
    }

    /// The array `key` of a list answer.
    fn list<'a>(&self, answer: &'a Answer, key: &str) -> anyhow::Result<&'a Vec<Value>> {
        answer
            .json
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| self.unexpected(answer))
    }

    fn unexpected(&self, answer: &Answer) -> anyhow::Error {
        let shown: String = String::from_utf8_lossy(&answer.raw)
            .chars()
            .take(200)
            .collect();
        self.failed(&format!("unexpected answer from the proxy: {shown}"))
    }

    /// A single-image change succeeded: its JSON result (`--format json`)
    /// and, with `-v`, its message.
    fn done(&self, result: Value, message: &str) -> anyhow::Result<()> {
        if self.json() {
            emit(&result.to_string())?;
        }
        self.note(message)
    }

    /// A `-v` message: on stdout for tables (as Glance prints it), on stderr
    /// with `--format json` (stdout holds only the document).
    fn note(&self, message: &str) -> anyhow::Result<()> {
        if !self.common.verbose {
            Ok(())
        } else if self.json() {
            eprintln!("{message}");
            Ok(())
        } else {
            emit(message)
        }
    }
}

/// `list-cached`'s output for a non-empty `images` list:
/// `Found N cached images...` and the table.
/// Glance's table of cached images; with a remote tier (entries carry a
/// `tier`), a Tier column, and the images only the remote tier holds
/// after this node's.
fn cached_listing(images: &[Value], remote: &[Value]) -> String {
    let tiers = images.iter().chain(remote).any(|i| i.get("tier").is_some());
    let mut columns = vec![
        ("ID", Align::Center),
        ("Last Accessed (UTC)", Align::Center),
        ("Last Modified (UTC)", Align::Center),
        ("Size", Align::Right),
        ("Hits", Align::Right),
    ];
    if tiers {
        columns.push(("Tier", Align::Center));
    }
    let mut table = Table::new(&columns);
    for image in images.iter().chain(remote) {
        let mut row = vec![
            text(&image["image_id"]),
            if image.get("last_accessed").is_some() {
                time(&image["last_accessed"], true)
            } else {
                "-".to_owned()
            },
            time(&image["last_modified"], false),
            text(&image["size"]),
            if image.get("hits").is_some() {
                text(&image["hits"])
            } else {
                "-".to_owned()
            },
        ];
        if tiers {
            row.push(text(&image["tier"]));
        }
        table.add_row(row);
    }
    let mut out = format!("Found {} cached images...\n", images.len());
    if !remote.is_empty() {
        out.push_str(&format!(
            "and {} more only in the remote tier...\n",
            remote.len()
        ));
    }
    out.push_str(&table.render());
    out
}

/// `raw` as a canonical lower-case UUID if Python's `uuid.UUID` accepts it
/// (hyphens anywhere or none, optional braces and `urn:uuid:` prefix, any
/// case).
fn canonical_uuid(raw: &str) -> Option<String> {
    let hex = raw.replace("urn:", "").replace("uuid:", "");
    let hex: String = hex
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    glance_cache::ImageId::parse(&id).ok().map(|_| id)
}

/// A cell: strings as they are, anything else as JSON text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "N/A".to_owned(),
        other => other.to_string(),
    }
}

/// A time cell for `value`: ISO-8601 UTC, `N/A` for a never-accessed 0.
fn time(value: &Value, zero_is_never: bool) -> String {
    match value.as_f64() {
        Some(t) if zero_is_never && t == 0.0 => "N/A".to_owned(),
        Some(t) => iso8601_utc(t).unwrap_or_else(|| text(value)),
        None => text(value),
    }
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not
/// an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

/// The proxy's own document, as received.
fn emit_raw(answer: &Answer) -> anyhow::Result<()> {
    emit(String::from_utf8_lossy(&answer.raw).trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_the_forms_python_accepts_become_canonical() {
        let canonical = "a7998f07-4bca-4460-9f11-a1a70ddca252";
        for raw in [
            canonical,
            "A7998F07-4BCA-4460-9F11-A1A70DDCA252",
            "a7998f074bca44609f11a1a70ddca252",
            "{a7998f07-4bca-4460-9f11-a1a70ddca252}",
            "urn:uuid:a7998f07-4bca-4460-9f11-a1a70ddca252",
        ] {
            assert_eq!(canonical_uuid(raw).as_deref(), Some(canonical), "{raw}");
        }
        for raw in [
            "",
            "not-a-uuid",
            "../cache.db",
            "a7998f07-4bca-4460-9f11-a1a70ddca25",
            "a7998f07-4bca-4460-9f11-a1a70ddca2522",
            "g7998f07-4bca-4460-9f11-a1a70ddca252",
            "a7998f07 4bca-4460-9f11-a1a70ddca252",
        ] {
            assert_eq!(canonical_uuid(raw), None, "{raw}");
        }
    }

    #[test]
    fn listed_times_are_those_python_prints_for_the_json_text() {
        // serde_json without its `float_roundtrip` feature (see Cargo.toml)
        // reads these one unit in the last place off, and would print
        // ...29.984313 and ...30.012635.
        let raw = r#"{"cached_images": [{"image_id": "a7998f07-4bca-4460-9f11-a1a70ddca252",
            "hits": 3, "last_accessed": 1795508789.9843137, "last_modified": 1795508790.0126343,
            "size": 1048576}]}"#;
        let doc: Value = serde_json::from_str(raw).expect("json");
        let images = doc["cached_images"].as_array().expect("rows");
        let listing = cached_listing(images, &[]);
        let expected = "\
Found 1 cached images...
+--------------------------------------+----------------------------+----------------------------+---------+------+
|                  ID                  |    Last Accessed (UTC)     |    Last Modified (UTC)     |    Size | Hits |
+--------------------------------------+----------------------------+----------------------------+---------+------+
| a7998f07-4bca-4460-9f11-a1a70ddca252 | 2026-11-24T08:26:29.984314 | 2026-11-24T08:26:30.012634 | 1048576 |    3 |
+--------------------------------------+----------------------------+----------------------------+---------+------+";
        assert_eq!(listing, expected);
    }

    #[test]
    fn with_a_remote_tier_the_listing_says_where_each_image_is() {
        let raw = r#"{"cached_images": [{"image_id": "a7998f07-4bca-4460-9f11-a1a70ddca252",
            "hits": 3, "last_accessed": 0, "last_modified": 0, "size": 10, "tier": "both"}],
            "remote_images": [{"image_id": "b7998f07-4bca-4460-9f11-a1a70ddca252",
            "last_modified": 0, "size": 20, "tier": "remote"}]}"#;
        let doc: Value = serde_json::from_str(raw).expect("json");
        let listing = cached_listing(
            doc["cached_images"].as_array().unwrap(),
            doc["remote_images"].as_array().unwrap(),
        );
        assert!(listing
            .starts_with("Found 1 cached images...\nand 1 more only in the remote tier...\n"));
        let rows: Vec<&str> = listing.lines().filter(|l| l.contains("7998f07")).collect();
        assert_eq!(rows.len(), 2, "{listing}");
        assert!(
            rows[0].contains("|  both  |") && rows[0].contains("|    3 |"),
            "{listing}"
        );
        assert!(
            rows[1].contains("remote") && rows[1].contains("|    - |"),
            "{listing}"
        );
    }

    fn cell(v: Value, zero_is_never: bool) -> String {
        time(&v, zero_is_never)
    }

    #[test]
    fn cells() {
        assert_eq!(cell(json!(0), true), "N/A");
        assert_eq!(cell(json!(0.0), true), "N/A");
        assert_eq!(cell(json!(0), false), "1970-01-01T00:00:00");
        assert_eq!(
            cell(json!(1_651_504_844.086_052_4), true),
            "2022-05-02T15:20:44.086052"
        );
        // Shown raw, as Python would show the number.
        assert_eq!(cell(json!(1e300), false), "1e+300");
        assert_eq!(cell(json!("soon"), false), "soon");
        assert_eq!(cell(Value::Null, true), "N/A");
        assert_eq!(text(&json!(1_048_576)), "1048576");
        assert_eq!(text(&json!(1_048_576.0)), "1048576.0");
        assert_eq!(text(&json!("x")), "x");
    }
}
