//! The sign-in pages: `/login`, and `/setup` (the first run). Plain forms posted to the
//! server's `/auth` handlers, so they work before the WebAssembly loads.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// `/login`: a plain form posted to `/auth/login`, so it works before the WebAssembly loads.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| q.get("error"));
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    view! {
        <Title text="Sign in"/>
        <section class="page auth-page">
            <h1>"Sign in to Flowscope"</h1>
            {move || error().map(|e| view! { <p class="error-note" role="alert">{e}</p> })}
            <form method="post" action="/auth/login" class="auth-form">
                <input type="hidden" name="next" value=next/>
                <label>"User name" <input type="text" name="name" autocomplete="username" required autofocus/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button class="button" type="submit">"Sign in"</button>
            </form>
        </section>
    }
}

/// `/setup`: the first run, creating the first admin.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| q.get("error"));
    view! {
        <Title text="Set up"/>
        <section class="page auth-page">
            <h1>"Welcome to Flowscope"</h1>
            <p class="muted">"Create the first user. They are an admin: they add the other users, API tokens and secrets."</p>
            {move || error().map(|e| view! { <p class="error-note" role="alert">{e}</p> })}
            <form method="post" action="/auth/setup" class="auth-form">
                <label>"User name" <input type="text" name="name" autocomplete="username" required autofocus/></label>
                <label>"Password (8 characters or more)" <input type="password" name="password" autocomplete="new-password" minlength="8" required/></label>
                <label>"Password again" <input type="password" name="confirm" autocomplete="new-password" minlength="8" required/></label>
                <button class="button" type="submit">"Create admin and sign in"</button>
            </form>
        </section>
    }
}
