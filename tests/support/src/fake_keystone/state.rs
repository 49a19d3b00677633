//! Users, tokens and the answers of the fake Keystone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::FakeUser;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A user with ids and its roles expanded.
#[derive(Debug)]
pub(crate) struct UserRecord {
    pub(crate) name: String,
    pub(crate) id: String,
    password: String,
    pub(crate) project: String,
    pub(crate) project_id: String,
    pub(crate) roles: Vec<String>,
}

/// An issued token.
#[derive(Clone, Debug)]
pub(crate) struct TokenRecord {
    pub(crate) user: usize,
    pub(crate) scoped: bool,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) revoked: bool,
    audit_id: String,
}

impl TokenRecord {
    fn valid(&self) -> bool {
        !self.revoked && SystemTime::now() < self.expires_at
    }
}

/// Everything the server shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) addr: SocketAddr,
    pub(crate) users: Vec<UserRecord>,
    pub(crate) tokens: Mutex<HashMap<String, TokenRecord>>,
    pub(crate) lifetime: Mutex<Duration>,
    pub(crate) failure: Mutex<Option<StatusCode>>,
    pub(crate) delay: Mutex<Duration>,
    pub(crate) issued: AtomicUsize,
    pub(crate) validations: AtomicUsize,
    pub(crate) requests: AtomicUsize,
}

/// Keystone's default implied roles, plus the roles themselves.
fn expand(roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |r: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            out.push(r.to_owned());
        }
    };
    for r in roles {
        add(r);
        let implied: &[&str] = match r.to_lowercase().as_str() {
            "admin" => &["manager", "member", "reader"],
            "manager" => &["member", "reader"],
            "member" => &["reader"],
            _ => &[],
        };
        for i in implied {
            add(i);
        }
    }
    out
}

fn id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

type Reply = Response<Full<Bytes>>;

impl State {
    pub(crate) fn new(addr: SocketAddr, users: Vec<FakeUser>, lifetime: Duration) -> Self {
        let mut project_ids: HashMap<String, String> = HashMap::new();
        let users = users
            .into_iter()
            .map(|u| UserRecord {
                id: id(),
                project_id: project_ids
                    .entry(u.project.clone())
                    .or_insert_with(id)
                    .clone(),
                roles: expand(&u.roles),
                name: u.name,
                password: u.password,
                project: u.project,
            })
            .collect();
        State {
            addr,
            users,
            tokens: Mutex::new(HashMap::new()),
            lifetime: Mutex::new(lifetime),
            failure: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            issued: AtomicUsize::new(0),
            validations: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    pub(crate) fn user_index(&self, name: &str) -> Option<usize> {
        self.users.iter().position(|u| u.name == name)
    }

    /// Issues a token for user `user` (scoped to its project or not).
    pub(crate) fn issue(&self, user: usize, scoped: bool, lifetime: Duration) -> String {
        let value = format!("fk{}{}", id(), id());
        let now = SystemTime::now();
        lock(&self.tokens).insert(
            value.clone(),
            TokenRecord {
                user,
                scoped,
                issued_at: now,
                expires_at: now + lifetime,
                revoked: false,
                audit_id: id(),
            },
        );
        value
    }

    fn valid_token(&self, value: Option<&HeaderValue>) -> Option<(String, TokenRecord)> {
        let value = value?.to_str().ok()?;
        let record = lock(&self.tokens).get(value).cloned()?;
        record.valid().then(|| (value.to_owned(), record))
    }

    fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"http://{}/v3\"", self.addr)
    }

    /// Answers one request.
    pub(crate) fn respond(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(status) = *lock(&self.failure) {
            return error(status, "The fake Keystone was told to fail.");
        }
        let path = path.trim_end_matches('/');
        match (method, path) {
            (&Method::GET, "/v3") => reply(StatusCode::OK, &self.version()),
            (&Method::POST, "/v3/auth/tokens") => self.password_auth(body),
            (&Method::GET | &Method::HEAD, "/v3/auth/tokens") => {
                self.validations.fetch_add(1, Ordering::Relaxed);
                let mut r = self.validate(headers);
                if method == Method::HEAD {
                    *r.body_mut() = Full::new(Bytes::new());
                }
                r
            }
            (&Method::DELETE, "/v3/auth/tokens") => self.revoke(headers),
            _ => error(StatusCode::NOT_FOUND, "The resource could not be found."),
        }
    }

    fn unauthorized(&self) -> Reply {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
        if let Ok(v) = HeaderValue::from_str(&self.www_authenticate()) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }

    fn version(&self) -> Value {
        json!({"version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": format!("http://{}/v3/", self.addr)}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
        }})
    }

    fn password_auth(&self, body: &[u8]) -> Reply {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return error(StatusCode::BAD_REQUEST, "Malformed request body.");
        };
        let auth = &doc["auth"];
        let user = &auth["identity"]["password"]["user"];
        let in_default_domain = |d: &Value| {
            d["id"].as_str() == Some("default")
                || d["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("default"))
        };
        let found = self.users.iter().position(|u| {
            let by_id = user["id"].as_str() == Some(u.id.as_str());
            let by_name = user["name"].as_str() == Some(u.name.as_str())
                && in_default_domain(&user["domain"]);
            (by_id || by_name) && user["password"].as_str() == Some(u.password.as_str())
        });
        let Some(index) = found else {
            return self.unauthorized();
        };
        let record = &self.users[index];
        let scoped = match &auth["scope"] {
            Value::Null => false,
            Value::String(s) if s == "unscoped" => false,
            scope => {
                let p = &scope["project"];
                let by_id = p["id"].as_str() == Some(record.project_id.as_str());
                let by_name = p["name"].as_str() == Some(record.project.as_str())
                    && in_default_domain(&p["domain"]);
                if !(by_id || by_name) || record.roles.is_empty() {
                    return self.unauthorized();
                }
                true
            }
        };
        let lifetime = *lock(&self.lifetime);
        let value = self.issue(index, scoped, lifetime);
        self.issued.fetch_add(1, Ordering::Relaxed);
        let Some(token) = lock(&self.tokens).get(&value).cloned() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "lost the token");
        };
        let mut r = reply(StatusCode::CREATED, &self.document(&token));
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert("x-subject-token", v);
        }
        r
    }

    fn validate(&self, headers: &HeaderMap) -> Reply {
        let Some((caller_value, caller)) = self.valid_token(headers.get("x-auth-token")) else {
            return self.unauthorized();
        };
        let Some(subject_value) = headers.get("x-subject-token").and_then(|v| v.to_str().ok())
        else {
            return error(StatusCode::NOT_FOUND, "No token in the request");
        };
        let caller_roles = &self.users[caller.user].roles;
        let privileged = caller.scoped
            && caller_roles
                .iter()
                .any(|r| r.eq_ignore_ascii_case("admin") || r.eq_ignore_ascii_case("service"));
        if !privileged && caller_value != subject_value {
            return error(
                StatusCode::FORBIDDEN,
                "You are not authorized to perform the requested action: identity:validate_token.",
            );
        }
        let subject = lock(&self.tokens).get(subject_value).cloned();
        match subject {
            Some(t) if t.valid() => {
                let mut r = reply(StatusCode::OK, &self.document(&t));
                if let Ok(v) = HeaderValue::from_str(subject_value) {
                    r.headers_mut().insert("x-subject-token", v);
                }
                r
            }
            Some(_) => error(StatusCode::NOT_FOUND, "Failed to validate token"),
            None => error(StatusCode::NOT_FOUND, "Could not recognize Fernet token"),
        }
    }

    fn revoke(&self, headers: &HeaderMap) -> Reply {
        let Some((caller_value, caller)) = self.valid_token(headers.get("x-auth-token")) else {
            return self.unauthorized();
        };
        let Some(subject) = headers.get("x-subject-token").and_then(|v| v.to_str().ok()) else {
            return error(StatusCode::NOT_FOUND, "No token in the request");
        };
        let admin = self.users[caller.user]
            .roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("admin"));
        if !admin && caller_value != subject {
            return error(
                StatusCode::FORBIDDEN,
                "You are not authorized to perform the requested action: identity:revoke_token.",
            );
        }
        match lock(&self.tokens).get_mut(subject) {
            Some(t) if t.valid() => {
                t.revoked = true;
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            _ => error(StatusCode::NOT_FOUND, "Failed to validate token"),
        }
    }

    /// The token document Keystone answers issue and validation with
    /// (`?nocatalog` style).
    pub(crate) fn document(&self, t: &TokenRecord) -> Value {
        let u = &self.users[t.user];
        let domain = json!({"id": "default", "name": "Default"});
        let mut token = json!({
            "methods": ["password"],
            "user": {"domain": domain, "id": u.id, "name": u.name, "password_expires_at": null},
            "audit_ids": [t.audit_id],
            "expires_at": keystone_time(t.expires_at),
            "issued_at": keystone_time(t.issued_at),
        });
        if t.scoped {
            token["project"] = json!({"domain": domain, "id": u.project_id, "name": u.project});
            token["is_domain"] = json!(false);
            token["roles"] = u
                .roles
                .iter()
                .map(|r| json!({"id": format!("role-{}", r.to_lowercase()), "name": r}))
                .collect();
        }
        json!({ "token": token })
    }
}

fn reply(status: StatusCode, body: &Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("X-Auth-Token"));
    r
}

fn error(status: StatusCode, message: &str) -> Reply {
    reply(
        status,
        &json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "title": status.canonical_reason().unwrap_or("Error"),
        }}),
    )
}

/// Formats like Keystone: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
fn keystone_time(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_roles() {
        let e = |r: &[&str]| expand(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(e(&["admin"]), ["admin", "manager", "member", "reader"]);
        assert_eq!(e(&["member"]), ["member", "reader"]);
        assert_eq!(e(&["reader"]), ["reader"]);
        assert_eq!(e(&["service"]), ["service"]);
        assert_eq!(
            e(&["Admin", "member"]),
            ["Admin", "manager", "member", "reader"]
        );
    }
}
