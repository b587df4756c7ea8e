"""The teacher-forced flow-matching term's pure pieces."""
import pytest
import torch

from worldsim.training.config import ConfigError
from worldsim.training.teacher_forcing_term import TeacherForcingTerm, noised_context, teacher_forced_loss


class _ExactVelocity:
    """Returns the flow-matching target itself, (noisy − x0) / σ = ε − x0, so the loss is zero
    exactly when the term hands the network the true latents, their noisy copy and their levels."""

    def __init__(self, latents):
        self.latents, self.seen = latents, {}

    def forward_teacher_forcing(self, clean, noisy, sigma, actions, events, clean_sigma=None):
        self.seen.update(clean=clean, clean_sigma=clean_sigma, actions=actions, events=events)
        return (noisy - self.latents) / sigma[..., None, None, None]


@pytest.mark.parametrize("loss_weight", ["bell", "uniform"])
def test_teacher_forced_loss_is_zero_for_the_exact_velocity_and_positive_for_a_wrong_one(loss_weight):
    torch.manual_seed(0)
    latents, actions, events = torch.randn(3, 4, 2, 5, 5), torch.zeros(3, 4, dtype=torch.long), torch.randn(3, 4, 6)
    term = TeacherForcingTerm(weight=1.0, context_noise=0.2, loss_weight=loss_weight)
    exact = _ExactVelocity(latents)
    cells = torch.rand(3, 4, 1, 5, 5) + 0.5
    assert float(teacher_forced_loss(exact, latents, actions, events, 1.0, term, cells)) == pytest.approx(0.0, abs=1e-8)
    assert exact.seen["actions"] is actions and exact.seen["events"] is events
    assert float(exact.seen["clean_sigma"].max()) <= 0.2 and not torch.equal(exact.seen["clean"], latents)
    wrong = _ExactVelocity(latents + 0.5)
    assert float(teacher_forced_loss(wrong, latents, actions, events, 1.0, term, cells)) > 0.01


def test_noised_context_noises_what_it_is_given_within_the_level():
    latents = torch.randn(2, 3, 4, 2, 2)
    assert noised_context(latents, 0.0) == (latents, None)
    clean, sigma = noised_context(latents, 0.1)
    assert sigma.shape == (2, 3) and float(sigma.max()) <= 0.1 and not torch.equal(clean, latents)


def test_the_switch_weight_counts_the_switch_frame_more():
    """With the exact velocity on every frame but the switch frame, the loss grows with the switch weight."""
    torch.manual_seed(0)
    latents, actions, events = torch.randn(2, 4, 2, 5, 5), torch.zeros(2, 4, dtype=torch.long), torch.randn(2, 4, 6)
    event_ids = torch.tensor([[0, 0, 3, 3], [1, 1, 1, 1]])  # row 0 switches into frame 2
    wrong_at_switch = latents.clone()
    wrong_at_switch[0, 2] += 0.5
    found = []
    for strength in (0.0, 8.0):
        torch.manual_seed(1)  # the same noise levels and noise for both strengths
        term = TeacherForcingTerm(weight=1.0, loss_weight="uniform", switch_weight=strength)
        found.append(float(teacher_forced_loss(_ExactVelocity(wrong_at_switch), latents, actions, events, 1.0, term,
                                               event_ids=event_ids)))
    assert found[1] > 2 * found[0] > 0
    with pytest.raises(ValueError, match="event_ids"):
        teacher_forced_loss(_ExactVelocity(latents), latents, actions, events, 1.0,
                            TeacherForcingTerm(weight=1.0, switch_weight=4.0))


def test_term_settings_are_checked():
    TeacherForcingTerm(weight=1.0, sprite_weight=10.0, switch_weight=4.0).validate()
    for bad in (dict(weight=-1.0), dict(sprite_weight=-1.0), dict(switch_weight=-1.0), dict(context_noise=1.0),
                dict(loss_weight="flat")):
        with pytest.raises(ConfigError):
            TeacherForcingTerm(**bad).validate()
