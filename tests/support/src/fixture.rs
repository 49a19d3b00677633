//! The tests' standard world on the fake Glance: tokens and images.

use crate::fake_glance::{
    AuthMode, FakeGlance, FakeGlanceBuilder, FakeImage, Identity, ImageStatus, RunningFakeGlance,
    Visibility,
};

/// A public image, `IMAGEDATA`, owned by project X.
pub const PUB: &str = "11111111-1111-4111-8111-111111111111";
/// A private image of project X, `A..Z`.
pub const PRIV: &str = "22222222-2222-4222-8222-222222222222";
/// An image without data (status `queued`).
pub const QUEUED: &str = "33333333-3333-4333-8333-333333333333";
/// A public image that tests deactivate.
pub const DEACT: &str = "44444444-4444-4444-8444-444444444444";
/// A public 50 MiB pattern.
pub const BIG: &str = "55555555-5555-4555-8555-555555555555";

/// md5 of `IMAGEDATA`.
pub const PUB_MD5: &str = "0fc85dbea99575776296eaaa1d314eb1";

/// Size of the BIG image.
pub const BIG_SIZE: u64 = 50 << 20;

/// The bytes of [`PRIV`].
pub fn alphabet() -> Vec<u8> {
    (b'A'..=b'Z').collect()
}

/// ADMIN, MEMBER (project X), READER (X), OTHER (member of Y); images PUB
/// (public, `IMAGEDATA`, owner X), PRIV (private to X, A..Z), QUEUED (no
/// data), DEACT (deactivated), BIG (50 MiB public pattern).
pub async fn fake_glance() -> RunningFakeGlance {
    fake_glance_builder()
        .spawn()
        .await
        .expect("start fake glance")
}

/// The builder of [`fake_glance`]'s world, for a variation (TLS, a port).
pub fn fake_glance_builder() -> FakeGlanceBuilder {
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
}
