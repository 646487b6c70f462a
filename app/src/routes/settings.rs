//! `/settings`: the admin's users, API tokens, secrets and (on PostgreSQL) workers, with the
//! server functions it calls. Every one checks the caller's role itself (`auth::require`).

use engine::access::{Role, SecretInfo, TokenInfo, UserInfo};
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::auth::{current, SignIn};
use crate::components::{format_duration, format_ms, ErrorNote};
use crate::error::AppError;

/// Everything the settings page lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessData {
    pub sign_in: bool,
    pub users: Vec<UserInfo>,
    pub tokens: Vec<TokenInfo>,
    pub secrets: Vec<SecretInfo>,
    /// The processes running workflows on this database (PostgreSQL); `None` on SQLite, where
    /// this server is the only one.
    pub workers: Option<Vec<WorkerInfo>>,
    /// The database's size and how long runs are kept.
    pub storage: StorageInfo,
}

/// What the database takes, and the server's retention defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageInfo {
    pub database_bytes: i64,
    /// Of that, free pages kept for reuse (SQLite).
    pub free_bytes: i64,
    pub max_age_ms: Option<i64>,
    pub max_runs: Option<u64>,
    pub keep_failed_ms: Option<i64>,
    /// Between passes; 0: pruning is off.
    pub every_ms: i64,
    /// Runs this process deleted since it started.
    pub pruned: u64,
}

/// One process running workflows, as the settings page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    /// `serve` or `worker`.
    pub kind: String,
    pub started_at: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub silent_ms: i64,
    /// Its lease has not expired: it still holds its runs.
    pub alive: bool,
    /// Unfinished runs it holds.
    pub runs: i64,
    /// The process serving this page.
    pub this: bool,
}

#[cfg(feature = "ssr")]
fn engine_error(e: engine::executor::EngineError) -> AppError {
    use engine::executor::EngineError;
    match e {
        EngineError::Store(s) => s.into(),
        EngineError::Secrets(m) => AppError::Invalid(m),
        other => {
            leptos::logging::error!("settings: {other}");
            AppError::Internal
        }
    }
}

#[cfg(feature = "ssr")]
fn actor() -> Option<String> {
    current().and_then(|p| p.actor())
}

#[server(endpoint = "access_list")]
pub async fn access_list() -> Result<AccessData, AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let engine = expect_context::<engine::executor::Engine>();
    let store = engine.store();
    Ok(AccessData {
        sign_in: use_context::<SignIn>().is_some_and(|s| s.0),
        users: store.users().await?,
        tokens: store.tokens().await?,
        secrets: engine.secret_infos().await.map_err(engine_error)?,
        workers: workers(&engine).await?,
        storage: storage(&engine).await?,
    })
}

#[cfg(feature = "ssr")]
async fn storage(engine: &engine::executor::Engine) -> Result<StorageInfo, AppError> {
    let (database_bytes, free_bytes) = engine.store().database_bytes().await?;
    let r = engine.retention();
    let ms = |d: std::time::Duration| d.as_millis() as i64;
    Ok(StorageInfo {
        database_bytes,
        free_bytes,
        max_age_ms: r.max_age.map(ms),
        max_runs: r.max_runs,
        keep_failed_ms: r.keep_failed.map(ms),
        every_ms: ms(r.every),
        pruned: engine.metrics().runs_pruned.get(),
    })
}

#[cfg(feature = "ssr")]
async fn workers(engine: &engine::executor::Engine) -> Result<Option<Vec<WorkerInfo>>, AppError> {
    let (Some(me), Some(lease)) = (engine.worker_id(), engine.worker_lease()) else {
        return Ok(None);
    };
    let (rows, now) = engine.store().workers_now().await?;
    let lease = lease.as_millis() as i64;
    Ok(Some(
        rows.into_iter()
            .map(|w| WorkerInfo {
                this: w.id == me,
                silent_ms: now - w.heartbeat_at,
                alive: now - w.heartbeat_at <= lease,
                name: w.name,
                kind: w.kind,
                started_at: w.started_at,
                runs: w.runs,
            })
            .collect(),
    ))
}

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<Role, AppError> {
    Role::parse(role).ok_or_else(|| AppError::Invalid(format!("unknown role \"{role}\"")))
}

#[cfg(feature = "ssr")]
async fn hash(password: String) -> Result<String, AppError> {
    engine::vault::bounded_hash(move || engine::vault::hash_password(&password))
        .await
        .map_err(|e| AppError::Invalid(e.to_string()))?
        .map_err(|e| {
            leptos::logging::error!("{e}");
            AppError::Internal
        })
}

#[server(endpoint = "access_add_user")]
pub async fn add_user(name: String, password: String, role: String) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let name = name.trim().to_string();
    engine::access::check_name("user", &name).map_err(AppError::Invalid)?;
    engine::access::check_password(&password).map_err(AppError::Invalid)?;
    let role = parse_role(&role)?;
    let hash = hash(password).await?;
    let engine = expect_context::<engine::executor::Engine>();
    engine
        .store()
        .create_user(&name, &hash, role, engine::store::now_ms())
        .await?;
    Ok(())
}

#[server(endpoint = "access_set_role")]
pub async fn set_role(id: i64, role: String) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let engine = expect_context::<engine::executor::Engine>();
    Ok(engine.store().set_user_role(id, parse_role(&role)?).await?)
}

#[server(endpoint = "access_delete_user")]
pub async fn delete_user(id: i64) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let engine = expect_context::<engine::executor::Engine>();
    Ok(engine.store().delete_user(id).await?)
}

/// Creates an API token; the answer holds its value, the only time it is shown.
#[server(endpoint = "access_create_token")]
pub async fn create_token(name: String, role: String) -> Result<String, AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let name = name.trim().to_string();
    engine::access::check_name("token", &name).map_err(AppError::Invalid)?;
    let role = parse_role(&role)?;
    let token = engine::vault::new_token();
    let hash = engine::vault::token_hash(&token);
    let engine = expect_context::<engine::executor::Engine>();
    let by = current().map(|p| p.name);
    engine
        .store()
        .create_token(&name, &hash, role, by.as_deref(), engine::store::now_ms())
        .await?;
    Ok(token)
}

#[server(endpoint = "access_revoke_token")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let engine = expect_context::<engine::executor::Engine>();
    engine
        .store()
        .revoke_token(id, engine::store::now_ms())
        .await?;
    Ok(())
}

#[server(endpoint = "access_put_secret")]
pub async fn put_secret(name: String, value: String) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let name = name.trim().to_string();
    engine::access::check_secret_name(&name).map_err(AppError::Invalid)?;
    if value.is_empty() {
        return Err(AppError::Invalid("the secret's value is empty".into()));
    }
    let engine = expect_context::<engine::executor::Engine>();
    engine
        .put_secret(&name, &value, actor().as_deref())
        .await
        .map_err(engine_error)
}

#[server(endpoint = "access_delete_secret")]
pub async fn delete_secret(name: String) -> Result<(), AppError> {
    crate::auth::require(engine::access::Action::Administer)?;
    let engine = expect_context::<engine::executor::Engine>();
    engine.delete_secret(&name).await.map_err(engine_error)?;
    Ok(())
}

/// An input's value, emptied each time `action` succeeds: a saved secret or password does not
/// linger in the page.
fn cleared<I, O>(action: ServerAction<I>) -> impl Fn() -> String + Send + Sync + 'static
where
    I: leptos::server_fn::ServerFn<Output = O, Error = AppError> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    move || {
        let _ = action.version().get();
        String::new()
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL
        .into_iter()
        .map(|r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> })
        .collect_view()
}

/// The error of the last submission of an action, if it failed.
fn action_error<O: 'static>(
    value: impl Get<Value = Option<Result<O, AppError>>> + Send + Sync + 'static,
    lead: &'static str,
) -> impl IntoView {
    move || match value.get() {
        Some(Err(e)) => Some(view! { <ErrorNote error=e lead=lead/> }),
        _ => None,
    }
}

/// `/settings`: users, API tokens and secrets (admins only; the server enforces it).
#[component]
pub fn SettingsPage() -> impl IntoView {
    let add_user = ServerAction::<AddUser>::new();
    let set_role = ServerAction::<SetRole>::new();
    let delete_user = ServerAction::<DeleteUser>::new();
    let create_token = ServerAction::<CreateToken>::new();
    let revoke_token = ServerAction::<RevokeToken>::new();
    let put_secret = ServerAction::<PutSecret>::new();
    let delete_secret = ServerAction::<DeleteSecret>::new();
    let data = Resource::new(
        move || {
            (
                add_user.version().get(),
                set_role.version().get(),
                delete_user.version().get(),
                create_token.version().get(),
                revoke_token.version().get(),
                put_secret.version().get(),
                delete_secret.version().get(),
            )
        },
        |_| access_list(),
    );
    view! {
        <Title text="Settings"/>
        <section class="page settings">
            <header class="page-header"><h1>"Settings"</h1></header>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(d) => view! {
                            <Users data=d.clone() add=add_user set_role=set_role delete=delete_user/>
                            <Tokens tokens=d.tokens.clone() create=create_token revoke=revoke_token/>
                            <Secrets secrets=d.secrets.clone() put=put_secret delete=delete_secret/>
                            <Workers workers=d.workers.clone()/>
                            <Storage info=d.storage.clone()/>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The one row of a table with nothing in it yet: what goes there and how.
fn empty_row(columns: usize, text: &'static str) -> impl IntoView {
    view! { <tr class="empty-row"><td colspan=columns.to_string() class="muted">{text}</td></tr> }
}

#[component]
fn Users(
    data: AccessData,
    add: ServerAction<AddUser>,
    set_role: ServerAction<SetRole>,
    delete: ServerAction<DeleteUser>,
) -> impl IntoView {
    let none = data
        .users
        .is_empty()
        .then(|| empty_row(4, "No users yet. Add the first below."));
    let rows = data
        .users
        .clone()
        .into_iter()
        .map(|u| {
            let id = u.id.to_string();
            let id2 = id.clone();
            let label = format!("Role of {}", u.name);
            view! {
                <tr>
                    <td>{u.name}</td>
                    <td>
                        <ActionForm action=set_role attr:class="inline-form">
                            <input type="hidden" name="id" value=id2/>
                            <select name="role" aria-label=label>{role_options(u.role)}</select>
                            <button class="button small secondary" type="submit">"Change"</button>
                        </ActionForm>
                    </td>
                    <td class="num">{format_ms(u.created_at)}</td>
                    <td>
                        <ActionForm action=delete attr:class="inline-form">
                            <input type="hidden" name="id" value=id/>
                            <button class="button small danger" type="submit">"Delete"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="users">
            <h2 id="users">"Users"</h2>
            {(!data.sign_in).then(|| view! {
                <p class="muted">"Sign-in is off on this server (FLOWSCOPE_AUTH=false): users take effect once it is on."</p>
            })}
            <table class="table">
                <thead><tr><th>"Name"</th><th>"Role"</th><th>"Created"</th><th></th></tr></thead>
                <tbody>{rows}{none}</tbody>
            </table>
            {action_error(set_role.value(), "Could not change the role")}
            {action_error(delete.value(), "Could not remove the user")}
            <ActionForm action=add attr:class="form-row">
                <label>"Name" <input type="text" name="name" required prop:value=cleared(add)/></label>
                <label>"Password" <input type="password" name="password" minlength="8" autocomplete="new-password" required prop:value=cleared(add)/></label>
                <label>"Role" <select name="role">{role_options(Role::Viewer)}</select></label>
                <button class="button" type="submit">"Add user"</button>
            </ActionForm>
            {action_error(add.value(), "Could not add the user")}
            <p class="muted small">"Viewer reads everything · operator also runs, cancels and retries · editor also changes workflows · admin also manages users, tokens and secrets."</p>
        </section>
    }
}

#[component]
fn Tokens(
    tokens: Vec<TokenInfo>,
    create: ServerAction<CreateToken>,
    revoke: ServerAction<RevokeToken>,
) -> impl IntoView {
    let none = tokens
        .is_empty()
        .then(|| empty_row(7, "No API tokens yet. Create one below for a script or CI."));
    let rows = tokens
        .into_iter()
        .map(|t| {
            let id = t.id.to_string();
            let state = match t.revoked_at {
                Some(at) => format!("revoked {}", format_ms(at)),
                None => "active".to_string(),
            };
            view! {
                <tr class:revoked=t.revoked_at.is_some()>
                    <td>{t.name.clone()}</td>
                    <td>{t.role.as_str()}</td>
                    <td>{t.created_by.clone().unwrap_or_default()}</td>
                    <td class="num">{format_ms(t.created_at)}</td>
                    <td class="num">{t.last_used_at.map(format_ms).unwrap_or_else(|| "never".into())}</td>
                    <td>{state}</td>
                    <td>
                        {t.revoked_at.is_none().then(|| view! {
                            <ActionForm action=revoke attr:class="inline-form">
                                <input type="hidden" name="id" value=id.clone()/>
                                <button class="button small danger" type="submit">"Revoke"</button>
                            </ActionForm>
                        })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="tokens">
            <h2 id="tokens">"API tokens"</h2>
            <p class="muted">"For the REST API and the CLI: " <code>"Authorization: Bearer fs_…"</code>", or " <code>"FLOWSCOPE_TOKEN"</code>"."</p>
            <table class="table">
                <thead><tr><th>"Name"</th><th>"Role"</th><th>"Created by"</th><th>"Created"</th><th>"Last used"</th><th>"State"</th><th></th></tr></thead>
                <tbody>{rows}{none}</tbody>
            </table>
            {action_error(revoke.value(), "Could not revoke the token")}
            <ActionForm action=create attr:class="form-row">
                <label>"Name" <input type="text" name="name" placeholder="ci" required prop:value=cleared(create)/></label>
                <label>"Role" <select name="role">{role_options(Role::Operator)}</select></label>
                <button class="button" type="submit">"Create token"</button>
            </ActionForm>
            {move || match create.value().get() {
                Some(Ok(token)) => Some(view! {
                    <div class="token-once" role="status">
                        <p>"Copy this token now: it is not shown again."</p>
                        <code class="mono" data-testid="new-token">{token}</code>
                    </div>
                }.into_any()),
                Some(Err(e)) => Some(view! { <ErrorNote error=e lead="Could not create the token"/> }.into_any()),
                None => None,
            }}
        </section>
    }
}

#[component]
fn Secrets(
    secrets: Vec<SecretInfo>,
    put: ServerAction<PutSecret>,
    delete: ServerAction<DeleteSecret>,
) -> impl IntoView {
    let none = secrets.is_empty().then(|| {
        empty_row(
            5,
            "No secrets yet. Save one below, or set FLOWSCOPE_SECRET_<NAME> on the server.",
        )
    });
    let rows = secrets
        .into_iter()
        .map(|s| {
            let name = s.name.clone();
            view! {
                <tr>
                    <td class="mono">{s.name.clone()}</td>
                    <td class="num">{if s.from_config { "—".to_string() } else { format_ms(s.updated_at) }}</td>
                    <td>{s.updated_by.clone().unwrap_or_default()}</td>
                    <td>{if s.from_config { "configuration" } else { "stored, encrypted" }}</td>
                    <td>
                        {(!s.from_config).then(|| view! {
                            <ActionForm action=delete attr:class="inline-form">
                                <input type="hidden" name="name" value=name.clone()/>
                                <button class="button small danger" type="submit">"Delete"</button>
                            </ActionForm>
                        })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="secrets">
            <h2 id="secrets">"Secrets"</h2>
            <p class="muted">"Used in steps as " <code>"{{ secrets.NAME }}"</code>". Values are encrypted at rest, never shown again, and redacted from everything a run stores."</p>
            <table class="table">
                <thead><tr><th>"Name"</th><th>"Updated"</th><th>"By"</th><th>"Source"</th><th></th></tr></thead>
                <tbody>{rows}{none}</tbody>
            </table>
            {action_error(delete.value(), "Could not delete the secret")}
            <ActionForm action=put attr:class="form-row">
                <label>"Name" <input type="text" name="name" placeholder="SLACK_WEBHOOK_URL" required prop:value=cleared(put)/></label>
                <label>"Value" <input type="password" name="value" autocomplete="off" required prop:value=cleared(put)/></label>
                <button class="button" type="submit">"Save secret"</button>
            </ActionForm>
            {action_error(put.value(), "Could not save the secret")}
        </section>
    }
}

/// The database's size, and how long finished runs are kept.
#[component]
fn Storage(info: StorageInfo) -> impl IntoView {
    let mb = |b: i64| format!("{:.1} MB", b as f64 / 1e6);
    let limits: Vec<String> = [
        info.max_age_ms
            .map(|t| format!("for {}", format_duration(t))),
        info.max_runs
            .map(|n| format!("the newest {n} of each workflow")),
        info.keep_failed_ms
            .map(|t| format!("failed ones for {} in any case", format_duration(t))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let kept = if limits.is_empty() {
        "Finished runs are kept until a workflow's retention: says otherwise (no server default is set).".to_string()
    } else {
        format!(
            "Finished runs are kept {}, unless a workflow's retention: says otherwise.",
            limits.join(", ")
        )
    };
    let passes = if info.every_ms == 0 {
        "Pruning is off on this server (FLOWSCOPE_RETENTION_EVERY=0s).".to_string()
    } else {
        format!(
            "Pruned every {}: {} runs by this server since it started.",
            format_duration(info.every_ms),
            info.pruned
        )
    };
    view! {
        <section aria-labelledby="storage">
            <h2 id="storage">"Storage"</h2>
            <dl class="facts">
                <div><dt>"Database"</dt><dd data-database-bytes=info.database_bytes>{mb(info.database_bytes)}</dd></div>
                {(info.free_bytes > 0).then(|| view! { <div><dt>"Free, kept for reuse"</dt><dd>{mb(info.free_bytes)}</dd></div> })}
            </dl>
            <p>{kept}</p>
            <p class="muted">{passes}</p>
        </section>
    }
}

/// The processes that run workflows: on PostgreSQL several may share the database.
#[component]
fn Workers(workers: Option<Vec<WorkerInfo>>) -> impl IntoView {
    let body = match workers {
        None => view! {
            <p class="muted">"This server runs every workflow: an SQLite database serves one process. Several servers and "<code>"flowscope worker"</code>" processes can share a PostgreSQL database."</p>
        }
        .into_any(),
        Some(workers) => {
            let rows = workers
                .into_iter()
                .map(|w| {
                    let state = if w.alive { "alive" } else { "lease expired" };
                    view! {
                        <tr>
                            <td class="mono">{w.name}{w.this.then_some(" (this server)")}</td>
                            <td>{w.kind}</td>
                            <td class="num">{format_ms(w.started_at)}</td>
                            <td class="num">{format!("{} ago", format_duration(w.silent_ms))}</td>
                            <td><span class="badge" data-status=if w.alive { "succeeded" } else { "failed" }>{state}</span></td>
                            <td class="num">{w.runs}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <p class="muted">"Processes sharing this PostgreSQL database. Each claims runs while it has room; a process silent longer than its lease has its runs taken over by the others."</p>
                <table class="table">
                    <thead><tr><th>"Name"</th><th>"Kind"</th><th class="num">"Started"</th><th class="num">"Last heartbeat"</th><th>"State"</th><th class="num">"Runs held"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        }
    };
    view! {
        <section aria-labelledby="workers">
            <h2 id="workers">"Workers"</h2>
            {body}
        </section>
    }
}
