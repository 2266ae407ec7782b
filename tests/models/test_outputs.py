"""tlbench.models.outputs reads every network's output one way: main logits first, auxiliary
logits after (torchvision's GoogLeNetOutputs / InceptionOutputs namedtuples, any tuple)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import GoogLeNetOutputs, InceptionOutputs

from tlbench.models import outputs

Y = torch.tensor([0, 2])


def logits(seed: int) -> torch.Tensor:
    return torch.randn(2, 3, generator=torch.Generator().manual_seed(seed))


def test_a_tensor_is_the_logits():
    main = logits(0)
    assert outputs.split(main) == (main, [])
    assert outputs.logits(main) is main


def test_auxiliary_namedtuples_give_main_logits_first_and_skip_absent_heads():
    main, aux1, aux2 = logits(0), logits(1), logits(2)
    got_main, aux = outputs.split(GoogLeNetOutputs(main, aux2, aux1))
    assert got_main is main and aux == [aux2, aux1]
    got_main, aux = outputs.split(InceptionOutputs(main, None))  # a scripted net, aux head off
    assert got_main is main and aux == []
    assert outputs.logits((main, aux1)) is main  # any tuple whose first element is the logits


def test_the_loss_adds_each_auxiliary_head_at_its_weight():
    main, aux1, aux2 = logits(0), logits(1), logits(2)
    loss, got = outputs.loss(GoogLeNetOutputs(main, aux2, aux1), Y)
    expected = F.cross_entropy(main, Y) + outputs.AUX_LOSS_WEIGHT * (
        F.cross_entropy(aux1, Y) + F.cross_entropy(aux2, Y)
    )
    assert got is main and torch.allclose(loss, expected)
    assert torch.allclose(outputs.loss(main, Y)[0], F.cross_entropy(main, Y))


@pytest.mark.parametrize("out", [{"logits": logits(0)}, (), (None, logits(0)), "logits"])
def test_an_output_it_cannot_read_is_a_bug_with_its_type_named(out):
    with pytest.raises(TypeError, match=f"of type {type(out).__name__}"):
        outputs.split(out)


def test_the_logits_wrapper_returns_a_tensor_in_train_mode_too():
    class TwoHeads(nn.Module):
        def forward(self, x):
            return InceptionOutputs(x.sum(dim=1), x.mean(dim=1))

    x = torch.randn(2, 4, 3)
    wrapped = outputs.Logits(TwoHeads()).train()
    assert torch.equal(wrapped(x), x.sum(dim=1))
