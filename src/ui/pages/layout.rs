//! The frame every page shares: head, navigation, the data's time, the rounding rule, and
//! the response headers that keep the pages self-contained (nothing loads from elsewhere).

use maud::{DOCTYPE, Markup, html};

use crate::ui::access::Access;
use crate::ui::numbers;

/// The pages' media type.
pub const HTML: &str = "text/html; charset=utf-8";

/// Content-Security-Policy of every page: scripts, styles and forms from this server only,
/// images from it or inline `data:` (the favicon), no frames, no plugins, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Headers of every page: the policy above, no MIME sniffing, no referrer outside the
/// server, never cached (pages show live data to a signed-in person).
pub fn security_headers() -> [(&'static str, &'static str); 4] {
    [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
    ]
}

/// What the frame needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct Chrome {
    pub access: Access,
    /// Seconds between automatic refreshes (0: none).
    pub refresh_secs: u64,
    /// When the page's data was read.
    pub now_ms: u64,
}

/// A full page: `title` in the tab and as the heading, `content` inside `<main>`.
pub fn page(chrome: &Chrome, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · banditd" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/dashboard.css";
                @if chrome.refresh_secs > 0 {
                    script src="/ui/assets/refresh.js" defer {}
                }
            }
            body data-refresh-seconds=(chrome.refresh_secs) {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    nav aria-label="Dashboard" {
                        a class="brand" href="/ui/" { "banditd" }
                        a href="/ui/" { "Experiments" }
                        a href="/ui/config" { "Configuration" }
                    }
                    @if chrome.access == Access::Session {
                        form class="logout" method="post" action="/ui/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    p class="as-of" {
                        "Data as of "
                        time datetime=(numbers::utc(chrome.now_ms)) { (numbers::utc(chrome.now_ms)) }
                        @if chrome.refresh_secs > 0 {
                            // Shown by the refresh script: without it the page does not refresh.
                            span class="js-only" {
                                " · refreshes every " (chrome.refresh_secs) " s while this tab is visible"
                            }
                        }
                    }
                    (content)
                }
                footer {
                    p { (numbers::ROUNDING_RULE) }
                    p { "Times are UTC. Served by banditd " (env!("CARGO_PKG_VERSION")) "." }
                }
            }
        }
    }
}

/// The page of a [`UiError`](crate::ui::error::UiError).
pub fn error_page(status: u16, title: &str, detail: &str, hint: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · banditd" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/dashboard.css";
            }
            body {
                header class="top" {
                    nav aria-label="Dashboard" {
                        a class="brand" href="/ui/" { "banditd" }
                        a href="/ui/" { "Experiments" }
                        a href="/ui/config" { "Configuration" }
                    }
                }
                main id="main" {
                    h1 { (title) " (" (status) ")" }
                    p class="error-detail" { (detail) }
                    p { (hint) " " a href="/ui/" { "Back to the experiments." } }
                }
            }
        }
    }
}
