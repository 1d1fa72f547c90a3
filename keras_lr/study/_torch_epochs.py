"""The study's epoch on PyTorch: one eager step per batch, as Keras's torch trainer runs it.

Each step assigns the run's rate of the step to the wrapper's ``lr_scale``, runs the forward
pass, ``loss.backward()`` and ``optimizer.apply`` on the variables' gradients under
``torch.no_grad()`` (the steps of ``model.fit`` on torch, without its callbacks and metrics).
The losses (and the estimate d) stay on the device until the epoch ends and are read once. The
model's and the optimizer's variables are the state, read and written in place.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Epochs"]


class Epochs:
    """The epoch and evaluation of one study group on PyTorch.

    Args:
        model: the built model; its variables hold the state.
        optimizer: the built study optimizer.
        scale: the wrapper's ``lr_scale`` variable (the step's rate is assigned to it), or the
            ``replica_rate`` vector of a `keras_lr.sweep` replicated optimizer.
        estimate: the variable d of Prodigy or DAdaptAdam, recorded after each step, or None.
        tensors: ``(x_train, y_train, x_val, y_val)`` tensors.
        steps: training steps per epoch.
        batch_size: samples per step.
        loss_and_score: ``f(y, pred) -> (mean loss, mean score)`` in `keras.ops` (vectors of
            the replicas' for a replicated model: the gradient is that of their sum).
        family: the model family (unused: every family steps eagerly).
    """

    def __init__(self, model, optimizer, scale, estimate, tensors, steps, batch_size,
                 loss_and_score, family):
        del steps, batch_size, family
        self.model, self.optimizer, self.scale, self.estimate = model, optimizer, scale, estimate
        self.x_train, self.y_train, self.x_val, self.y_val = tensors
        self.loss_and_score = loss_and_score

    def run(self, perm: np.ndarray, rates: np.ndarray):
        """Train one epoch: batch ``j`` is ``x_train[perm[j]]`` at rate ``rates[j]``.

        Returns:
            ``(losses, d)``: the float64 loss of every step (``(steps, N)`` for replicas), and
            the estimate after every step (None without one).
        """
        model, optimizer = self.model, self.optimizer
        variables = model.trainable_variables
        device = self.x_train.device
        perm = torch.as_tensor(np.asarray(perm, np.int64), device=device)
        losses, d = [], []
        for j in range(len(perm)):
            self.scale.assign(rates[j])
            model.zero_grad()
            idx = perm[j]
            loss, _ = self.loss_and_score(self.y_train[idx],
                                          model(self.x_train[idx], training=True))
            loss.sum().backward()  # replicas: the sum of their losses
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in variables], variables)
            losses.append(loss.detach())
            if self.estimate is not None:
                d.append(self.estimate.value.detach().clone())
        losses = torch.stack(losses).to(torch.float64).cpu().numpy()
        return losses, (torch.stack(d).to(torch.float64).cpu().numpy() if d else None)

    def evaluate(self):
        """``(loss, score)`` of the model's current variables on the validation set."""
        with torch.no_grad():
            pred = self.model(self.x_val, training=False)
            values = [v.to(torch.float64).cpu().numpy() for v in self.loss_and_score(self.y_val,
                                                                                    pred)]
        return tuple(float(v) if v.ndim == 0 else v for v in values)
