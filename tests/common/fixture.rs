//! The spec §11 fixture on the fake Glance: tokens and images.

use glance_cache_support::fake_glance::{
    AuthMode, FakeGlance, FakeImage, Identity, ImageStatus, RunningFakeGlance, Visibility,
};

use super::{BIG, DEACT, PRIV, PUB, QUEUED};

/// Size of the BIG image.
pub const BIG_SIZE: u64 = 50 << 20;

pub fn alphabet() -> Vec<u8> {
    (b'A'..=b'Z').collect()
}

/// ADMIN, MEMBER (project X), READER (X), OTHER (member of Y); images PUB
/// (public, `IMAGEDATA`, owner X), PRIV (private to X, A..Z), QUEUED (no
/// data), DEACT (deactivated), BIG (50 MiB public pattern).
pub async fn fake_glance() -> RunningFakeGlance {
    FakeGlance::builder()
        .auth(AuthMode::Tokens)
        .token(
            "ADMIN",
            Identity::new("admin-project").roles(["admin", "member", "reader"]),
        )
        .token("MEMBER", Identity::new("X").roles(["member", "reader"]))
        .token("READER", Identity::new("X").roles(["reader"]))
        .token("OTHER", Identity::new("Y").roles(["member", "reader"]))
        .image(
            FakeImage::new(PUB)
                .bytes("IMAGEDATA")
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .image(
            FakeImage::new(PRIV)
                .bytes(alphabet())
                .visibility(Visibility::Private)
                .owner("X"),
        )
        .image(FakeImage::new(QUEUED).no_data().owner("X"))
        .image(
            FakeImage::new(DEACT)
                .bytes("DEACTDATA")
                .visibility(Visibility::Public)
                .owner("X")
                .status(ImageStatus::Active),
        )
        .image(
            FakeImage::new(BIG)
                .pattern(BIG_SIZE, 42)
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .spawn()
        .await
        .expect("start fake glance")
}
