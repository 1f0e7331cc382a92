//! `/ui/config`: what the server runs — the loaded version and when, the folder and its files,
//! how reloads arrive, the last reload that was refused with each of its `file:line:col`, and
//! the version every live replica sharing the store runs (config drift).

use maud::{Markup, html};

use crate::engine::{ConfigStatus, ReplicaSet, WatchMode, WatchStatus};
use crate::ui::numbers;

pub fn render(status: &ConfigStatus, watch: &WatchStatus, replicas: Option<&ReplicaSet>) -> Markup {
    let build = crate::build_info::current();
    html! {
        section aria-labelledby="loaded-heading" {
            h2 id="loaded-heading" { "Loaded" }
            dl class="facts" {
                dt { "Version" } dd { code class="version" { (status.version) } }
                dt { "Loaded at" } dd { time datetime=(numbers::utc(status.loaded_ms)) { (numbers::utc(status.loaded_ms)) } }
                dt { "Folder" } dd { @if let Some(dir) = &status.directory { code { (dir) } } @else { "none (fixed list)" } }
                dt { "Environment" } dd { (status.environment.as_deref().unwrap_or("all")) }
                dt { "Reloads" } dd {
                    (match watch.mode {
                        WatchMode::Notify => "on file changes (notifications), SIGHUP and POST /v1/admin/reload",
                        WatchMode::Poll => "on file changes (polling), SIGHUP and POST /v1/admin/reload",
                        WatchMode::Off => "on SIGHUP and POST /v1/admin/reload only",
                    })
                }
                dt { "Server" } dd {
                    "banditd " (build.version) " (commit "
                    (build.commit.get(..12).unwrap_or(build.commit)) ", " (build.profile) " build)"
                }
            }
        }
        section aria-labelledby="files-heading" {
            h2 id="files-heading" { "Files" }
            @if status.files.is_empty() {
                p { "No experiment files are loaded." }
            } @else {
                div class="table-wrap" role="region" aria-labelledby="files-caption" tabindex="0" {
                    table class="files" {
                        caption id="files-caption" { "The files of the loaded version." }
                        thead { tr {
                            th scope="col" { "File" }
                            th scope="col" { "Experiment" }
                            th scope="col" class="num" { "Revision" }
                        } }
                        tbody {
                            @for file in &status.files {
                                tr {
                                    td { code { (file.path) } }
                                    td { a href=(format!("/ui/experiments/{}", file.experiment)) { (file.experiment) } }
                                    td class="num" { (file.revision) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (replica_section(replicas))
        section aria-labelledby="error-heading" {
            h2 id="error-heading" { "Last refused reload" }
            @match &status.last_error {
                None => p class="ok-note" { "None: every reload since the start applied." },
                Some(failure) => {
                    div class="reload-error" role="alert" {
                        p {
                            "At " time datetime=(numbers::utc(failure.at_ms)) { (numbers::utc(failure.at_ms)) }
                            ", asked by " strong { (failure.trigger) } ", nothing was changed; the "
                            "server kept running the version above. Fix these and save again:"
                        }
                        ul class="reload-errors" {
                            @for error in &failure.errors { li { code { (error) } } }
                        }
                        @if !failure.files.is_empty() {
                            p { "Files with errors: "
                                @for (i, file) in failure.files.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (file) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every live replica and the version it runs; a warning while they disagree (a rollout that
/// has not reached every replica, or a replica that refused a reload).
fn replica_section(replicas: Option<&ReplicaSet>) -> Markup {
    html! {
        section aria-labelledby="replicas-heading" {
            h2 id="replicas-heading" { "Replicas" }
            @match replicas {
                None => p class="note" role="note" {
                    "The store could not list the replicas just now; the page shows them again "
                    "once it answers."
                },
                Some(set) => {
                    @if set.agree {
                        p class="ok-note" {
                            @if set.live.len() == 1 { "One replica: this one." }
                            @else { "All " (set.live.len()) " replicas run the same version." }
                        }
                    } @else {
                        p class="drift" role="alert" {
                            strong { "Config drift: " }
                            "the " (set.live.len()) " live replicas do not run the same experiment "
                            "folder ("
                            @for (i, group) in set.versions.iter().enumerate() {
                                @if i > 0 { "; " }
                                "version " code { (group.version) } " on " (group.replicas.join(", "))
                            }
                            "). Finish the rollout, or reload the replicas that lag."
                        }
                    }
                    div class="table-wrap" role="region" aria-labelledby="replicas-caption" tabindex="0" {
                        table class="replicas" {
                            caption id="replicas-caption" { "Live replicas sharing the store." }
                            thead { tr {
                                th scope="col" { "Replica" }
                                th scope="col" { "Address" }
                                th scope="col" { "Version" }
                                th scope="col" { "Loaded at" }
                            } }
                            tbody {
                                @for report in &set.live {
                                    tr data-replica=(report.id) {
                                        td {
                                            (report.id)
                                            @if report.id == set.this_replica { " (this one)" }
                                        }
                                        td { code { (report.address) } }
                                        td { code class="replica-version" { (report.version) } }
                                        td { time datetime=(numbers::utc(report.loaded_ms)) { (numbers::utc(report.loaded_ms)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
