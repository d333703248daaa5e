use std::collections::BTreeMap;

use lastmile_spec::Step;

use super::{NodeState, Schedule};

fn step(name: &str, needs: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        run: "true".to_owned(),
        needs: needs.iter().map(|need| (*need).to_owned()).collect(),
        env: BTreeMap::new(),
        timeout: None,
        retries: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
        secrets: Vec::new(),
        workdir: None,
    }
}

#[test]
fn ready_steps_come_in_file_order_and_wait_for_needs() {
    let steps = [step("a", &[]), step("b", &["a"]), step("c", &[])];
    let mut schedule = Schedule::new(&steps);
    assert_eq!(schedule.next_ready(), Some(0));
    schedule.mark_running(0);
    assert_eq!(schedule.next_ready(), Some(2), "b waits for a");
    schedule.mark_running(2);
    assert_eq!(schedule.next_ready(), None);
    schedule.mark_finished(0, NodeState::Done);
    assert_eq!(schedule.next_ready(), Some(1));
    assert_eq!(schedule.needs(1), &[0]);
}

#[test]
fn a_stopped_need_blocks_its_dependents_forever() {
    let steps = [step("a", &[]), step("b", &["a"]), step("c", &["b"])];
    let mut schedule = Schedule::new(&steps);
    schedule.mark_running(0);
    schedule.mark_finished(0, NodeState::Stopped);
    assert_eq!(schedule.next_ready(), None);
    assert_eq!(schedule.running(), 0);
    assert!(!schedule.all_done());
}

#[test]
fn all_done_only_when_every_step_is_done() {
    let steps = [step("a", &[]), step("b", &["a"])];
    let mut schedule = Schedule::new(&steps);
    for index in 0..2 {
        assert_eq!(schedule.next_ready(), Some(index));
        schedule.mark_running(index);
        assert_eq!(schedule.running(), 1);
        assert!(!schedule.all_done());
        schedule.mark_finished(index, NodeState::Done);
    }
    assert!(schedule.all_done());
    assert_eq!(schedule.next_ready(), None);
}
