"""Start/Stop/RebootInstances' jobs: one kind per action, the machine driven, then the
instance shows what the machine reports."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal, TypeVar

from lightkeeper import compute, storage
from lightkeeper.domain.model import Instance, InstanceState, OperationState
from lightkeeper.domain.placement import Uses
from lightkeeper.lighthouse.jobs.base import JobKind, NoParams, Params
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job

StopType = Literal["SOFT", "HARD", "SOFT_FIRST"]
STOP_TYPES: tuple[StopType, ...] = ("SOFT", "HARD", "SOFT_FIRST")


class StopParams(Params):
    stop_type: StopType = "SOFT_FIRST"


P = TypeVar("P", bound=Params)


class Power(JobKind[P]):
    """The stored kind is the API action's name, which is also the instance's
    LatestOperation (``rules.POWER_RULES``)."""

    uses = Uses.MACHINE

    @abstractmethod
    def act(self, driver: compute.ComputeDriver, job: Job) -> None:
        """Drive the machine; the lease was renewed just before."""

    def run(self, job: Job) -> None:
        driver = self.world.compute
        try:
            self.world.hold(job)
            self.act(driver, job)
            state = InstanceState(driver.status(job.need_instance()))
        except compute.ComputeError as exc:
            return self.compensate(job, f"{job.kind} failed: {exc}")
        with self.world.job_write(job) as conn:
            db.update_instance(
                conn,
                job.need_instance(),
                state=state,
                latest_operation_state=OperationState.SUCCESS,
                op_job=None,
            )
            jobs.finish(conn, job, jobs.SUCCESS)


class StartInstances(Power[NoParams]):
    name = "StartInstances"
    action = "StartInstances"
    params_type = NoParams

    def act(self, driver: compute.ComputeDriver, job: Job) -> None:
        with self.world.read() as conn:
            instance = db.get_instance(conn, job.need_instance(), tags=False)
        if instance is not None:
            self._prepare(driver, instance)
        driver.start(job.need_instance())

    def _prepare(self, driver: compute.ComputeDriver, instance: Instance) -> None:
        """Before this node boots the machine: register it if it was made on another node
        (a shared pool), and fence the disk, so a machine that outlived its node can write
        it no more — unless the machine already runs here (a start that has nothing to do
        must not cut its own machine off)."""
        storage_ = self.world.storage
        try:
            state: str | None = driver.status(instance.instance_id)
        except compute.StatusUnavailable:
            state = None
        if state == "RUNNING":
            return
        try:
            storage_.fence_disk(instance.disk_id)
            attachment = storage_.attachment(instance.disk_id)
        except storage.StorageError as exc:
            raise compute.ComputeError(f"cannot fence the disk off: {exc}") from exc
        if state is None:  # moved here from another node
            driver.create(instance.instance_id, "STOPPED", attachment)


class StopInstances(Power[StopParams]):
    name = "StopInstances"
    action = "StopInstances"
    params_type = StopParams

    def act(self, driver: compute.ComputeDriver, job: Job) -> None:
        driver.stop(job.need_instance(), force=self.params(job).stop_type == "HARD")


class RebootInstances(Power[NoParams]):
    name = "RebootInstances"
    action = "RebootInstances"
    params_type = NoParams

    def act(self, driver: compute.ComputeDriver, job: Job) -> None:
        driver.reboot(job.need_instance())
