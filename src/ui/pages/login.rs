//! `/ui/login`: asks for the admin key once. The form carries an anti-forgery value that must
//! match the `banditd_login` cookie set with the form (double submit), and the key goes in a
//! password field that the page never fills back in.

use maud::{DOCTYPE, Markup, html};

/// Why the form is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    None,
    WrongKey,
    Expired,
}

pub fn render(nonce: &str, next: &str, notice: Notice) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · banditd" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/dashboard.css";
            }
            body {
                main id="main" class="login" {
                    h1 { "banditd dashboard" }
                    p { "This server has an admin key. Enter it once; the browser then keeps a "
                        "signed session cookie (not the key) until it expires or you sign out." }
                    @match notice {
                        Notice::WrongKey => p class="form-error" role="alert" id="login-error" {
                            "That is not the admin key of this server."
                        },
                        Notice::Expired => p class="form-error" role="alert" id="login-error" {
                            "The form expired or did not come from this page. Enter the key again."
                        },
                        Notice::None => {},
                    }
                    form method="post" action="/ui/login" {
                        input type="hidden" name="csrf" value=(nonce);
                        input type="hidden" name="next" value=(next);
                        label for="key" { "Admin key" }
                        input id="key" name="key" type="password" autocomplete="current-password"
                            required autofocus
                            aria-describedby=[(notice != Notice::None).then_some("login-error")];
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}
