"""The Simulator asks the reward model about a step exactly as the reward stage trains it: the K
latents ending with the frame the action was taken from, plus that action."""
import torch
from test_world_fixtures import activate

from worldsim.model import WorldConfig
from worldsim.world import WorldModel


def test_first_step_reward_sees_only_the_start_frame():
    world = activate(WorldModel.create(WorldConfig.preset("tiny"), event_texts=["night falls"], seed=0))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    forward = world.reward_model.forward
    world.reward_model.forward = lambda latents, actions: seen.append((latents.clone(), actions.clone())) or forward(
        latents, actions)
    sim = world.simulator(batch_size=2, seed=0)
    sim.reset(event="night falls")
    sim.step(torch.tensor([1, 3]))
    sim.step(torch.tensor([2, 4]))
    (first_window, first_actions), (second_window, second_actions) = seen
    # After a reset the window is the start frame repeated: the new frame is not in it yet.
    assert torch.equal(first_window, first_window[:, :1].expand_as(first_window))
    assert first_actions.tolist() == [1, 3] and second_actions.tolist() == [2, 4]
    # One step later the window has moved by exactly one frame: the one the first step produced.
    assert torch.equal(second_window[:, :-1], first_window[:, 1:])
    assert not torch.equal(second_window[:, -1], first_window[:, -1])
