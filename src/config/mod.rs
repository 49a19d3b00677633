//! placeholder (being written)
/// placeholder
#[derive(Debug, thiserror::Error)]
#[error("config error")]
pub struct ConfigError;
/// placeholder
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitAuthorization {
    /// probe
    Probe,
    /// metadata
    Metadata,
    /// none
    None,
}
