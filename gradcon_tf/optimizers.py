"""Adam as written in Kingma & Ba (2015), Algorithm 1, which PyTorch and the authors' release use.

Keras' ``Adam`` applies epsilon to the *uncorrected* second moment (the "epsilon hat" form of the
Adam paper's Section 2): ``var -= lr_t * m / (sqrt(v) + eps)``. Algorithm 1 adds it to the
bias-corrected one: ``var -= lr * m_hat / (sqrt(v_hat) + eps)``. The two differ by a factor
``sqrt(1 - beta_2^t)`` on epsilon, large in the first thousand steps (31.6 at step 1), which is
where GradCon's running average of gradients is shaped.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gradcon_tf")
class CorrectedEpsilonAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with epsilon added to sqrt(v_hat), as Algorithm 1 and PyTorch do.

    Same arguments as Keras' Adam; ``amsgrad`` is not supported.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("CorrectedEpsilonAdam does not support amsgrad.")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        first_correction = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        second_correction = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.sqrt(ops.divide(v, second_correction)), self.epsilon)
        self.assign_sub(
            variable, ops.divide(ops.multiply(m, lr / first_correction), denominator)
        )


@keras.saving.register_keras_serializable(package="gradcon_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate * min(1, (step + 1) / warmup_steps)``: a linear ramp, then constant."""

    def __init__(self, learning_rate, warmup_steps):
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps must be a positive number of steps, got {warmup_steps}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        fraction = ops.minimum(1.0, ops.divide(ops.cast(step, "float32") + 1.0, self.warmup_steps))
        return self.learning_rate * fraction

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}
