//! Tests of the `glance-cache-proxy` binary as a process.

mod support;

mod cli;
mod cluster;
mod config_cmd;
mod glanceclient;
mod keystone_glance;
mod manage_cli;
mod observability;
mod offline;
mod process;
mod real_glance;
mod tls;
