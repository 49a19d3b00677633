//! placeholder: replaced by the management authorization module
#![allow(missing_docs, dead_code)]
use http::HeaderMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyRule {
    CacheList,
    CacheImage,
    CacheDelete,
    CacheClean,
    CachePrune,
    ListCachedNodes,
    ManageImageCache,
}
impl PolicyRule {
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyRule::CacheList => "cache_list",
            PolicyRule::CacheImage => "cache_image",
            PolicyRule::CacheDelete => "cache_delete",
            PolicyRule::CacheClean => "cache_clean",
            PolicyRule::CachePrune => "cache_prune",
            PolicyRule::ListCachedNodes => "list_cached_nodes",
            PolicyRule::ManageImageCache => "manage_image_cache",
        }
    }
}
#[derive(Debug)]
pub enum Refusal {
    Unauthenticated,
    Forbidden(PolicyRule),
    Unavailable(String),
}
#[derive(Debug, Clone, Default)]
pub struct Principal {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
    pub static_token: bool,
}
#[derive(Clone, Debug)]
pub struct ManagementAuth {
    tokens: Vec<String>,
    open: bool,
}
impl ManagementAuth {
    pub fn open() -> Self {
        ManagementAuth {
            tokens: vec![],
            open: true,
        }
    }
    pub fn static_tokens(tokens: Vec<String>) -> Self {
        ManagementAuth {
            tokens,
            open: false,
        }
    }
    pub async fn check(
        &self,
        headers: &HeaderMap,
        _rule: PolicyRule,
    ) -> Result<Principal, Refusal> {
        if self.open {
            return Ok(Principal::default());
        }
        let t = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .ok_or(Refusal::Unauthenticated)?;
        if self.tokens.iter().any(|k| k == t) {
            Ok(Principal {
                roles: vec!["admin".into()],
                static_token: true,
                ..Default::default()
            })
        } else {
            Err(Refusal::Unauthenticated)
        }
    }
    pub async fn service_token(&self) -> Result<Option<String>, crate::BoxError> {
        Ok(None)
    }
}
