"""One rank of tests/law/test_warmup_hf.py's two-process run (started by torch.distributed.run): trains
the tiny GPT-2 under the warmup on CPU (gloo) and writes, per update, the example rows this rank's
forward passes saw and the lr, to OUT/rank{RANK}.json."""

import json
import os
import sys
from pathlib import Path

import torch
import transformers

from scalestudy.law.warmup_hf import WarmupCallback, warmup_optimizers, warmup_training_args
from scalestudy.law.warmup_pytorch import WarmupDataset
from warmup_curves import small_warmup

TOKENS, VOCAB = 6, 16


class Recorder(transformers.TrainerCallback):
    def __init__(self, model, rows):
        self.updates, self.lrs, self._seen, self.rows = [], [], [], rows
        model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        if module.training:
            self._seen += [self.rows[tuple(row.tolist())] for row in kwargs["input_ids"]]

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.updates.append(self._seen)
        self._seen = []


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warmup = small_warmup()
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=TOKENS, n_embd=8, n_layer=1, n_head=2, n_inner=8)
    model = transformers.GPT2LMHeadModel(config)
    tokens = torch.randint(0, VOCAB, (warmup.dataset_size, TOKENS), generator=torch.Generator().manual_seed(1))
    rows = {tuple(row.tolist()): i for i, row in enumerate(tokens)}
    train = [{"input_ids": row, "labels": row} for row in tokens]
    args = transformers.TrainingArguments(output_dir=str(out / "trainer"), report_to="none", use_cpu=True,
                                          save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                                          **warmup_training_args(warmup, per_device_train_batch_size=2, devices=2))
    recorder = Recorder(model, rows)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=WarmupDataset(train, warmup, seed=5),
                                   optimizers=warmup_optimizers(model, warmup),
                                   callbacks=[WarmupCallback(warmup), recorder])
    trainer.train()
    rank = int(os.environ["RANK"])
    (out / f"rank{rank}.json").write_text(json.dumps({"world_size": args.world_size, "updates": recorder.updates,
                                                      "lrs": recorder.lrs}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
