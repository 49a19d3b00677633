//! Integration tests of the library: the stack that ships ([`glance_cache::Stack`]) in
//! front of the fake Glance (misbehaving on demand), a real Glance and a real Keystone,
//! on 127.0.0.1. One test binary; `proxy` is the shared fixture.

mod proxy;

mod bad_input;
mod fill_failures;
mod forwarding_loops;
mod full_disk;
mod healthcheck;
mod hit_authorization;
mod integrity;
mod invalidation;
mod keystone_management_auth;
mod layer_service_fn;
mod manage_api;
mod manage_keystone;
mod metrics;
mod never_cached;
mod ranges;
mod real_glance_harness;
mod real_keystone_harness;
mod remote_tier;
mod single_flight;
mod stalled_clients;
mod tls;
mod transparent;
