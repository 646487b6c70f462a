//! Who is signed in, the check every server function makes first ([`require`]), and the
//! parts of pages that depend on the role (the user menu, [`IfRole`]). The server's
//! middleware decides what each role may call; pages only hide what the caller could not use
//! anyway. The sign-in and settings pages are under `routes/`.

use engine::access::{Principal, Role, Via};
use leptos::prelude::*;

use crate::error::AppError;

/// Whether the server requires sign-in (provided as context on the server).
#[derive(Debug, Clone, Copy)]
pub struct SignIn(pub bool);

/// The caller, as the server's middleware found them.
#[cfg(feature = "ssr")]
pub fn current() -> Option<Principal> {
    use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<Principal>().cloned())
}

/// The caller, if their role allows `action`. Every server function starts with this, so a
/// page's data is guarded where it is read, not only by the route table in front of it.
#[cfg(feature = "ssr")]
pub fn require(action: engine::access::Action) -> Result<Principal, AppError> {
    let Some(p) = current() else {
        return Err(AppError::Denied("Sign in first.".into()));
    };
    if p.role.allows(action.role()) {
        Ok(p)
    } else {
        Err(AppError::Denied(format!(
            "\"{}\" has the {} role; this needs {}.",
            p.name,
            p.role,
            action.role()
        )))
    }
}

/// Who is calling: `None` on the public pages (sign-in, set-up) or when signed out.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Principal>, AppError> {
    Ok(current())
}

/// The caller for the page's components: loaded once with the page, kept while navigating.
#[derive(Clone, Copy)]
pub struct Me(pub Resource<Result<Option<Principal>, AppError>>);

/// The right end of the top bar: the user and sign-out, or the "No sign-in" warning.
#[component]
pub fn UserMenu() -> impl IntoView {
    let me = expect_context::<Me>();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match me.0.await {
                    Ok(Some(p)) if p.via == Via::Open => view! {
                        <span class="user-menu">
                            <span class="open-access" title="Sign-in is off (FLOWSCOPE_AUTH=false): anyone who can reach this address can use the hub">
                                "No sign-in"
                            </span>
                            // Secrets and tokens live there, sign-in or not.
                            <a href="/settings">"Settings"</a>
                        </span>
                    }.into_any(),
                    Ok(Some(p)) => view! {
                        <span class="user-menu">
                            <span class="user-name" title=format!("Signed in as {} ({})", p.name, p.role)>
                                {p.name.clone()} <span class="role-badge">{p.role.as_str()}</span>
                            </span>
                            {p.role.allows(Role::Admin).then(|| view! { <a href="/settings">"Settings"</a> })}
                            <form method="post" action="/auth/logout" class="inline-form">
                                <button type="submit" class="linklike">"Sign out"</button>
                            </form>
                        </span>
                    }.into_any(),
                    _ => ().into_any(),
                }
            })}
        </Suspense>
    }
}

/// Shows its children only to a caller whose role allows `role`: a viewer sees no Run or Edit
/// button that the server would refuse. Rendered on the server once the caller is known, so
/// hydration finds the same markup.
#[component]
pub fn IfRole(role: Role, children: ChildrenFn) -> impl IntoView {
    let me = expect_context::<Me>();
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let allowed = matches!(me.0.await, Ok(Some(p)) if p.role.allows(role));
                allowed.then(|| children.with_value(|c| c()))
            })}
        </Suspense>
    }
}
