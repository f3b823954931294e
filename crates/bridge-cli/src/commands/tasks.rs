//! `codex-bridge tasks list|add|start|done|block|depend|next|graph`: edits the project's task graph in
//! `project_state.json` (under the project lock, so a running bridge and the CLI never lose edits).

use std::io::Write as _;
use std::time::Duration;

use bridge_journal::render::{GraphFormat, render};
use bridge_journal::tasks::{Task, TaskStatus};

use crate::cli::{GraphFormatArg, TasksAction, TasksArgs};

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let (_, dir) = super::project_dir(&args.project)?;
    let mut out = std::io::stdout().lock();
    match args.action {
        TasksAction::List { json } => {
            let graph = dir.load()?.tasks;
            if json {
                writeln!(out, "{}", render(&graph, GraphFormat::Json))?;
            } else if graph.tasks.is_empty() {
                writeln!(out, "no tasks yet (add one with `codex-bridge tasks add TITLE`)")?;
            }
            if !json {
                for task in &graph.tasks {
                    writeln!(out, "{}", line(task))?;
                }
            }
        }
        TasksAction::Add { title, after } => {
            let id = dir.update(|s| s.tasks.add(&title, &after, None))??;
            writeln!(out, "added {id}")?;
        }
        TasksAction::Start { id } => set(&dir, &id, TaskStatus::InProgress, None, &mut out)?,
        TasksAction::Block { id, reason } => set(&dir, &id, TaskStatus::Blocked, reason, &mut out)?,
        TasksAction::Done { id, evidence } => {
            let head = match bridge_journal::git::snapshot(&dir.root, Duration::from_secs(5)).await {
                Ok(s) => s.head,
                Err(_) => None,
            };
            dir.update(|s| {
                s.tasks.set_status(&id, TaskStatus::Completed, evidence.as_deref())?;
                if let Some(h) = &head {
                    s.tasks.set_status(&id, TaskStatus::Completed, Some(h))?;
                }
                Ok::<_, bridge_journal::tasks::TaskError>(())
            })??;
            writeln!(out, "{id} completed")?;
        }
        TasksAction::Depend { id, on } => {
            dir.update(|s| s.tasks.depend(&id, &on))??;
            writeln!(out, "{id} now waits for {on}")?;
        }
        TasksAction::Next => {
            let graph = dir.load()?.tasks;
            let next = graph.next();
            if next.is_empty() {
                writeln!(out, "nothing ready")?;
            }
            for task in next {
                writeln!(out, "{}", line(task))?;
            }
        }
        TasksAction::Graph { format } => {
            let format = match format {
                GraphFormatArg::Dot => GraphFormat::Dot,
                GraphFormatArg::Mermaid => GraphFormat::Mermaid,
                GraphFormatArg::Json => GraphFormat::Json,
            };
            write!(out, "{}", render(&dir.load()?.tasks, format))?;
        }
    }
    Ok(())
}

fn set(
    dir: &bridge_journal::project::ProjectDir,
    id: &str,
    status: TaskStatus,
    note: Option<String>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    dir.update(|s| s.tasks.set_status(id, status, note.as_deref()))??;
    writeln!(out, "{id} {}", status.as_str())?;
    Ok(())
}

fn line(task: &Task) -> String {
    let deps =
        if task.depends_on.is_empty() { String::new() } else { format!("  after {}", task.depends_on.join(", ")) };
    format!("{:<5} {:<12} {}{deps}", task.id, task.status.as_str(), task.title)
}
