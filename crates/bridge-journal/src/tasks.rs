//! The task graph: a DAG of tasks kept in the long-term project state, fed by plan tool calls and edited
//! from the CLI.
//!
//! Invariants (checked by every edit; a failing edit leaves the graph unchanged):
//! - every dependency names an existing task (no dangling edges);
//! - the dependency relation has no cycle;
//! - ids are `t1`, `t2`, … in creation order and never reused.

use serde::{Deserialize, Serialize};

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
    Blocked,
}

impl TaskStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Blocked => "blocked",
        }
    }
}

/// One step of a plan tool call (parsed in `plan.rs`), as the graph takes it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    pub step: String,
    pub status: TaskStatus,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub status: TaskStatus,
    /// Ids of the tasks this one waits for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The session that created or last worked on it.
    #[serde(default)]
    pub owner_session: Option<String>,
    /// Commits, files or notes that show progress.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The commit the task is meant to land in, or did land in.
    #[serde(default)]
    pub target_commit: Option<String>,
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("no task with id {0:?}")]
    Unknown(String),
    #[error("task {task} cannot depend on {dependency}: no such task")]
    Dangling { task: String, dependency: String },
    #[error("refused: the dependency would create a cycle {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("a task needs a non-empty title")]
    EmptyTitle,
}

/// The DAG.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskGraph {
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    next_id: u64,
}

/// What applying a plan changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanEffect {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    /// Tasks that became completed with this plan.
    pub completed: Vec<String>,
}

impl TaskGraph {
    /// The task with `id`.
    pub fn get(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Task, TaskError> {
        self.tasks.iter_mut().find(|t| t.id == id).ok_or_else(|| TaskError::Unknown(id.to_owned()))
    }

    /// Adds a pending task; every dependency must exist.
    pub fn add(&mut self, title: &str, depends_on: &[String], owner: Option<&str>) -> Result<String, TaskError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(TaskError::EmptyTitle);
        }
        let id = format!("t{}", self.next_id + 1);
        if let Some(dependency) = depends_on.iter().find(|d| self.get(d).is_none()) {
            return Err(TaskError::Dangling { task: id, dependency: dependency.clone() });
        }
        self.next_id += 1;
        self.tasks.push(Task {
            id: id.clone(),
            title: title.to_owned(),
            status: TaskStatus::Pending,
            depends_on: depends_on.to_vec(),
            owner_session: owner.map(str::to_owned),
            evidence: Vec::new(),
            target_commit: None,
        });
        Ok(id)
    }

    /// Makes `id` depend on `dependency`, refusing dangling ids and cycles.
    pub fn depend(&mut self, id: &str, dependency: &str) -> Result<(), TaskError> {
        if self.get(dependency).is_none() {
            return Err(TaskError::Dangling { task: id.to_owned(), dependency: dependency.to_owned() });
        }
        if let Some(mut path) = self.path(dependency, id) {
            path.push(dependency.to_owned());
            return Err(TaskError::Cycle(path));
        }
        let task = self.get_mut(id)?;
        if !task.depends_on.iter().any(|d| d == dependency) {
            task.depends_on.push(dependency.to_owned());
        }
        Ok(())
    }

    /// A dependency path from `from` to `to` (following `depends_on`), if one exists.
    fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut stack = vec![vec![from.to_owned()]];
        let mut seen = std::collections::HashSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last()?.clone();
            if last == to {
                return Some(path);
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for dep in self.get(&last).map(|t| t.depends_on.clone()).unwrap_or_default() {
                let mut next = path.clone();
                next.push(dep);
                stack.push(next);
            }
        }
        None
    }

    /// Sets a status; `evidence` (a commit, a file, a note) is appended. Returns whether the task just
    /// became completed.
    pub fn set_status(&mut self, id: &str, status: TaskStatus, evidence: Option<&str>) -> Result<bool, TaskError> {
        let task = self.get_mut(id)?;
        let completed_now = status == TaskStatus::Completed && task.status != TaskStatus::Completed;
        task.status = status;
        if let Some(e) = evidence.filter(|e| !e.is_empty())
            && !task.evidence.iter().any(|x| x == e)
        {
            task.evidence.push(e.to_owned());
        }
        Ok(completed_now)
    }

    /// Tasks ready to work on: in progress first, then pending tasks whose dependencies are all completed.
    pub fn next(&self) -> Vec<&Task> {
        let done = |id: &String| self.get(id).is_some_and(|t| t.status == TaskStatus::Completed);
        let mut ready: Vec<&Task> = self.tasks.iter().filter(|t| t.status == TaskStatus::InProgress).collect();
        ready.extend(self.tasks.iter().filter(|t| t.status == TaskStatus::Pending && t.depends_on.iter().all(done)));
        ready
    }

    /// Mirrors a plan (Codex `update_plan` or OpenCode `todowrite`): steps are matched to tasks by title;
    /// new steps become tasks owned by `session`; a step that turns completed gets `head` as evidence and
    /// target commit.
    pub fn apply_plan(&mut self, items: &[PlanItem], session: &str, head: Option<&str>) -> PlanEffect {
        let mut effect = PlanEffect::default();
        for item in items {
            let existing =
                self.tasks.iter().find(|t| t.title.eq_ignore_ascii_case(item.step.trim())).map(|t| t.id.clone());
            let id = match existing {
                Some(id) => id,
                None => match self.add(&item.step, &[], Some(session)) {
                    Ok(id) => {
                        effect.added.push(id.clone());
                        id
                    }
                    Err(_) => continue,
                },
            };
            let Ok(task) = self.get_mut(&id) else { continue };
            if task.status == item.status {
                continue;
            }
            task.owner_session = Some(session.to_owned());
            let evidence = (item.status == TaskStatus::Completed).then_some(head).flatten();
            if let Some(commit) = evidence {
                task.target_commit = Some(commit.to_owned());
            }
            if let Ok(true) = self.set_status(&id, item.status, evidence) {
                effect.completed.push(id.clone());
            }
            if !effect.added.contains(&id) {
                effect.updated.push(id);
            }
        }
        effect
    }
}
