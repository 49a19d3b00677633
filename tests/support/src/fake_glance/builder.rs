//! [`FakeGlance`] and its builder.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use super::behaviour::Behaviour;
use super::calls::CallLog;
use super::error::FakeGlanceError;
use super::image::{FakeImage, ImageRecord};
use super::policy::{AuthMode, Identity};
use super::server::{self, RunningFakeGlance};
use super::state::{Behaviours, Shared, UploadDir};

/// Entry point: `FakeGlance::builder()...spawn().await`.
#[derive(Debug, Clone, Copy)]
pub struct FakeGlance;

impl FakeGlance {
    /// A builder with no images, [`AuthMode::NoAuth`] and Glance-like
    /// behaviour.
    pub fn builder() -> FakeGlanceBuilder {
        FakeGlanceBuilder::default()
    }
}

/// Configures a fake Glance before it starts.
#[derive(Debug, Default)]
pub struct FakeGlanceBuilder {
    auth: AuthMode,
    tokens: HashMap<String, Identity>,
    images: Vec<FakeImage>,
    default_behaviour: Behaviour,
    connection_close: bool,
    upload_dir: Option<PathBuf>,
    keystone_uri: Option<String>,
    port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl FakeGlanceBuilder {
    /// Chooses how callers are identified (default [`AuthMode::NoAuth`]).
    pub fn auth(mut self, mode: AuthMode) -> Self {
        self.auth = mode;
        self
    }

    /// Registers a token for [`AuthMode::Tokens`].
    pub fn token(mut self, token: impl Into<String>, identity: Identity) -> Self {
        self.tokens.insert(token.into(), identity);
        self
    }

    /// Adds an image.
    pub fn image(mut self, image: FakeImage) -> Self {
        self.images.push(image);
        self
    }

    /// Sets the behaviour of every image without its own.
    pub fn default_behaviour(mut self, behaviour: Behaviour) -> Self {
        self.default_behaviour = behaviour;
        self
    }

    /// Sends `Connection: close` on every response, as Glance under its
    /// sample uWSGI configuration does (default: keep-alive).
    pub fn connection_close(mut self, close: bool) -> Self {
        self.connection_close = close;
        self
    }

    /// Keeps uploaded data in `dir` (created if needed, left in place
    /// afterwards). By default a fresh directory under the system temporary
    /// directory is used and removed when the fake is dropped.
    pub fn upload_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.upload_dir = Some(dir.into());
        self
    }

    /// The URI in the 401 `WWW-Authenticate: Keystone uri="..."` header
    /// (default `http://127.0.0.1:5000`).
    pub fn keystone_uri(mut self, uri: impl Into<String>) -> Self {
        self.keystone_uri = Some(uri.into());
        self
    }

    /// Serves HTTPS with this configuration (e.g.
    /// [`TestPki::server_config`](crate::pki::TestPki::server_config)).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Listens on this port of 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Hashes the images' data (concurrently, on blocking threads), binds
    /// `127.0.0.1` and starts serving.
    pub async fn spawn(self) -> Result<RunningFakeGlance, FakeGlanceError> {
        let mut seen = HashSet::new();
        for image in &self.images {
            if !seen.insert(image.id.clone()) {
                return Err(FakeGlanceError::DuplicateImage {
                    id: image.id.clone(),
                });
            }
        }
        let prepared = futures_util::future::join_all(self.images.into_iter().map(prepare)).await;
        let mut images = HashMap::new();
        for record in prepared {
            let record = record?;
            images.insert(record.id.clone(), record);
        }

        let (uploads, remove_on_drop) = match self.upload_dir {
            Some(dir) => (dir, false),
            None => (
                std::env::temp_dir()
                    .join(format!("glance-cache-fake-glance-{}", uuid::Uuid::new_v4())),
                true,
            ),
        };
        let dir = uploads.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| FakeGlanceError::UploadDir {
                path: uploads.clone(),
                source,
            })?;
        let uploads = UploadDir {
            path: uploads,
            remove_on_drop,
        };

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| FakeGlanceError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FakeGlanceError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            addr,
            scheme: if self.tls.is_some() { "https" } else { "http" },
            auth: self.auth,
            tokens: Mutex::new(self.tokens),
            images: Mutex::new(images),
            behaviours: Mutex::new(Behaviours {
                default: self.default_behaviour,
                per_image: HashMap::new(),
            }),
            calls: CallLog::default(),
            served: Arc::new(AtomicU64::new(0)),
            connection_close: self.connection_close,
            keystone_uri: self
                .keystone_uri
                .unwrap_or_else(|| "http://127.0.0.1:5000".to_owned()),
            uploads,
        });
        tracing::info!(%addr, "fake glance listening");
        Ok(server::start(shared, listener, self.tls))
    }
}

/// Hashes an image's data on a blocking thread and makes its record.
pub(crate) async fn prepare(image: FakeImage) -> Result<ImageRecord, FakeGlanceError> {
    let data = image.data.clone();
    let id = image.id.clone();
    let digests = tokio::task::spawn_blocking(move || data.digests())
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|source| FakeGlanceError::Digest { id, source })?;
    Ok(image.into_record(digests))
}
