//! Who the caller is ([`AuthMode`], [`Identity`]) and Glance 33's default
//! image policies, including how a denial becomes 403 or 404.

use super::image::{ImageRecord, Visibility};

/// How the fake decides who is calling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request is an admin without a project, like Glance's
    /// unauthenticated context (`flavor` without `keystone`).
    #[default]
    NoAuth,
    /// Requests need an `X-Auth-Token` registered with the fake (token →
    /// [`Identity`]); a missing or unknown token answers 401, like
    /// keystonemiddleware. Identity headers sent by the client (`X-Roles`,
    /// `X-Project-Id`, ...) are ignored.
    Tokens,
}

/// The project and roles behind a token.
///
/// Roles imply others as in Keystone's default role hierarchy:
/// `admin` ⇒ `member` ⇒ `reader`.
///
/// ```
/// use glance_cache_support::fake_glance::Identity;
///
/// let member = Identity::new("X").roles(["member"]);
/// assert!(member.has_role("reader"));
/// assert!(!member.is_admin());
/// assert_eq!(member.project(), Some("X"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    project: Option<String>,
    roles: Vec<String>,
    admin_context: bool,
}

impl Identity {
    /// A project-scoped identity with no roles yet.
    pub fn new(project: impl Into<String>) -> Self {
        Identity {
            project: Some(project.into()),
            roles: Vec::new(),
            admin_context: false,
        }
    }

    /// Adds roles (lower-case names, as Keystone returns them).
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// The context of a request under [`AuthMode::NoAuth`]: admin, no project.
    pub(crate) fn unauthenticated_admin() -> Self {
        Identity {
            project: None,
            roles: Vec::new(),
            admin_context: true,
        }
    }

    /// The scoped project.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// Whether the identity has `role`, directly or by implication.
    pub fn has_role(&self, role: &str) -> bool {
        let implied_by: &[&str] = match role {
            "reader" => &["reader", "member", "admin"],
            "member" => &["member", "admin"],
            other => return self.roles.iter().any(|r| r == other),
        };
        self.roles.iter().any(|r| implied_by.contains(&r.as_str()))
    }

    /// Glance's `context_is_admin` (`role:admin`).
    pub fn is_admin(&self) -> bool {
        self.admin_context || self.roles.iter().any(|r| r == "admin")
    }

    fn owns(&self, image: &ImageRecord) -> bool {
        self.project.is_some() && self.project == image.owner
    }

    fn is_image_member(&self, image: &ImageRecord) -> bool {
        self.project
            .as_ref()
            .is_some_and(|p| image.owner.as_ref() != Some(p) && image.members.contains(p))
    }
}

/// The database-level visibility filter (`is_image_visible`): an image that
/// fails it is "not found" before any policy runs.
pub(crate) fn visible(who: &Identity, image: &ImageRecord) -> bool {
    if who.is_admin() || image.owner.is_none() {
        return true;
    }
    if matches!(image.visibility, Visibility::Public | Visibility::Community) {
        return true;
    }
    who.owns(image)
        || (image.visibility == Visibility::Shared
            && who
                .project
                .as_ref()
                .is_some_and(|p| image.members.contains(p)))
}

/// The per-image policy rules the fake enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    GetImage,
    DownloadImage,
    DeleteImage,
    UploadImage,
    Deactivate,
    Reactivate,
}

impl Rule {
    /// The rule name used in Glance's 403 text.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Rule::GetImage => "get_image",
            Rule::DownloadImage => "download_image",
            Rule::DeleteImage => "delete_image",
            Rule::UploadImage => "upload_image",
            Rule::Deactivate => "deactivate",
            Rule::Reactivate => "reactivate",
        }
    }

    /// Glance 33's default check string for the rule.
    pub(crate) fn allows(&self, who: &Identity, image: &ImageRecord) -> bool {
        if who.is_admin() {
            return true;
        }
        let open = matches!(
            image.visibility,
            Visibility::Public | Visibility::Community | Visibility::Shared
        );
        let related = who.owns(image) || who.is_image_member(image) || open;
        match self {
            Rule::GetImage => who.has_role("reader") && related,
            Rule::DownloadImage => who.has_role("member") && related,
            Rule::DeleteImage | Rule::UploadImage | Rule::Deactivate | Rule::Reactivate => {
                who.has_role("member") && who.owns(image)
            }
        }
    }
}

/// Why a policy check failed, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// 404 with webob's default text: the caller may not even see the image.
    NotFound,
    /// 403 "You are not authorized to complete {rule} action."
    Forbidden(Rule),
}

/// `ImageAPIPolicy._enforce`: a denied rule is reported as 404 when the
/// caller also fails `get_image`, otherwise as 403.
pub(crate) fn enforce(rule: Rule, who: &Identity, image: &ImageRecord) -> Result<(), Denial> {
    if rule.allows(who, image) {
        Ok(())
    } else if rule == Rule::GetImage || !Rule::GetImage.allows(who, image) {
        Err(Denial::NotFound)
    } else {
        Err(Denial::Forbidden(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_glance::image::FakeImage;

    fn img(vis: Visibility, owner: &str) -> ImageRecord {
        FakeImage::new("i")
            .bytes("x")
            .visibility(vis)
            .owner(owner)
            .member("S")
            .into_record(None)
    }

    #[test]
    fn spec_matrix_for_a_private_image() {
        let priv_x = img(Visibility::Private, "X");
        let admin = Identity::new("admin").roles(["admin"]);
        let member = Identity::new("X").roles(["member"]);
        let reader = Identity::new("X").roles(["reader"]);
        let other = Identity::new("Y").roles(["member"]);
        for who in [&admin, &member, &reader] {
            assert!(visible(who, &priv_x));
            assert_eq!(enforce(Rule::GetImage, who, &priv_x), Ok(()));
        }
        assert!(!visible(&other, &priv_x));
        assert_eq!(enforce(Rule::DownloadImage, &admin, &priv_x), Ok(()));
        assert_eq!(enforce(Rule::DownloadImage, &member, &priv_x), Ok(()));
        assert_eq!(
            enforce(Rule::DownloadImage, &reader, &priv_x),
            Err(Denial::Forbidden(Rule::DownloadImage))
        );
        assert_eq!(
            enforce(Rule::DeleteImage, &reader, &priv_x),
            Err(Denial::Forbidden(Rule::DeleteImage))
        );
        assert_eq!(enforce(Rule::Deactivate, &member, &priv_x), Ok(()));
    }

    #[test]
    fn public_shared_and_community() {
        let other = Identity::new("Y").roles(["member"]);
        let sharee = Identity::new("S").roles(["member"]);
        let pub_x = img(Visibility::Public, "X");
        assert!(visible(&other, &pub_x));
        assert_eq!(enforce(Rule::DownloadImage, &other, &pub_x), Ok(()));
        assert_eq!(
            enforce(Rule::DeleteImage, &other, &pub_x),
            Err(Denial::Forbidden(Rule::DeleteImage))
        );
        let shared_x = img(Visibility::Shared, "X");
        assert!(!visible(&other, &shared_x));
        assert!(visible(&sharee, &shared_x));
        assert_eq!(enforce(Rule::DownloadImage, &sharee, &shared_x), Ok(()));
        assert!(visible(&other, &img(Visibility::Community, "X")));
        // A role-less identity sees a public image in the DB but fails
        // get_image, so any denial is a 404.
        let nobody = Identity::new("Z");
        assert_eq!(
            enforce(Rule::DownloadImage, &nobody, &pub_x),
            Err(Denial::NotFound)
        );
    }

    #[test]
    fn no_auth_context_is_admin() {
        let ctx = Identity::unauthenticated_admin();
        assert!(ctx.is_admin() && ctx.project().is_none());
        assert_eq!(
            enforce(Rule::DeleteImage, &ctx, &img(Visibility::Private, "X")),
            Ok(())
        );
    }
}
