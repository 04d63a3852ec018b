"""One training step and one evaluation, under torchrun (2 processes, gloo) or alone; writes the
parameters after the step and the metrics to OUT (rank 0). Used by tests/test_distributed.py."""

import json
import sys

import torch
from torch.utils.data import DataLoader

from vidreid.config import load_config
from vidreid.engine.distributed import end_worker_process, init_from_env, shutdown
from vidreid.engine.trainer import Trainer

root, out, loss_spec, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rank, world = init_from_env()
cfg = load_config(None, [
    f"data.root={root}", "data.dataset=prid2011", "data.height=64", "data.width=32", "data.p=4", "data.k=2",
    "data.num_workers=0", "data.train_sampling.seq_len=3", "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}",
    f"loss={loss_spec}", "optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.0", "optim.weight_decay=0.0",
    "schedule.name=constant", "schedule.epochs=1", f"train.output_dir={out}/run{world}", "train.progress=false",
    "train.device=cpu", "data.split_id=0", "train.channels_last=false", "test.batch_size=32", *extra])
tr = Trainer(cfg)
tr.init_lookup_tables()  # train.lut_init (a no-op unless set): the fill is shared across ranks
tr.model.train()
for m in tr.model.modules():  # BatchNorm in eval mode: statistics do not depend on the split of the batch
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        m.eval()
before = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
out_ = tr.net(batch["clip"])
loss, parts = tr.loss(out_, batch["label"])
tr.optimizer.zero_grad()
loss.backward()
tr.optimizer.step()
metrics = tr.evaluate()
if rank == 0:
    torch.save({"after": {k: v.detach().clone() for k, v in tr.model.state_dict().items()}, "before": before,
                "batch": len(batch["label"]), "lut": [b.clone() for b in tr.loss.buffers()]}, f"{out}/params_{world}.pt")
    with open(f"{out}/metrics_{world}.json", "w") as f:
        json.dump({k: metrics[k] for k in ("rank1", "mAP", "mINP", "num_valid_queries")}, f)
    print("ok", world, parts, flush=True)
del out_, loss
tr.close()  # the DDP wrapper holds the group: let it go first (engine/distributed.shutdown)
shutdown()  # leave the gloo group before exit (else the process may abort in finalisation)
end_worker_process(0)  # and skip finalisation, where gloo's threads can still abort a finished process
