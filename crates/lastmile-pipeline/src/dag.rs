//! Which steps may start now: the pipeline's DAG as a small state machine.
//!
//! The runner owns time, processes and the store; this file only answers
//! "what is ready" and "what is left", so its rules can be tested alone.

use lastmile_spec::Step;

/// Where one step is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Waiting for its `needs` (or for a free job slot).
    Pending,
    /// Handed to the runner (checking the cache or executing).
    Running,
    /// Succeeded or restored from the cache: dependents may start.
    Done,
    /// Failed, timed out, cancelled or skipped: dependents never start.
    Stopped,
}

/// The step DAG with each step's state, indexed by file order.
#[derive(Debug)]
pub(crate) struct Schedule {
    needs: Vec<Vec<usize>>,
    states: Vec<NodeState>,
}

impl Schedule {
    /// Builds the schedule; `needs` naming an unknown step are ignored because
    /// the spec was validated before it got here.
    pub(crate) fn new(steps: &[Step]) -> Self {
        let needs = steps
            .iter()
            .map(|step| {
                step.needs
                    .iter()
                    .filter_map(|need| steps.iter().position(|other| &other.name == need))
                    .collect()
            })
            .collect();
        Self {
            needs,
            states: vec![NodeState::Pending; steps.len()],
        }
    }

    /// Indexes of the steps a step needs, in the order it lists them.
    pub(crate) fn needs(&self, step: usize) -> &[usize] {
        &self.needs[step]
    }

    /// The first pending step (file order) whose needs are all done.
    pub(crate) fn next_ready(&self) -> Option<usize> {
        (0..self.states.len()).find(|&step| {
            self.states[step] == NodeState::Pending
                && self.needs[step]
                    .iter()
                    .all(|&need| self.states[need] == NodeState::Done)
        })
    }

    /// Records that a step was handed to the runner.
    pub(crate) fn mark_running(&mut self, step: usize) {
        self.states[step] = NodeState::Running;
    }

    /// Records that a step finished, well (`Done`) or not (`Stopped`).
    pub(crate) fn mark_finished(&mut self, step: usize, state: NodeState) {
        self.states[step] = state;
    }

    /// Steps handed to the runner and not finished yet.
    pub(crate) fn running(&self) -> usize {
        self.count(NodeState::Running)
    }

    /// True when every step is done.
    pub(crate) fn all_done(&self) -> bool {
        self.states.iter().all(|state| *state == NodeState::Done)
    }

    fn count(&self, wanted: NodeState) -> usize {
        self.states.iter().filter(|state| **state == wanted).count()
    }
}

#[cfg(test)]
mod tests;
