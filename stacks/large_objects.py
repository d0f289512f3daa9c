"""The large-object tier: objects the ingest function cannot finish run on ECS Fargate.

The runtime side is ``lakeroute.aws.large_objects`` / ``lakeroute.task``: the ingest function
hands an object whose event size reaches ``LAKEROUTE_LARGE_OBJECT_BYTES`` (or that the time
left could never cover) to ``ecs:RunTask``; the task runs the SAME image and pipeline with its
entry point replaced (``python3 -m lakeroute.task``) and exits 0 (committed, skipped or
quarantined), 75 (retry) or 2 (misconfigured). This construct builds:

- the ECS cluster and the Fargate task definition (stage-sized CPU, memory and up to 200 GiB
  of ephemeral storage; read-only root file system with /tmp on the ephemeral storage, as in
  Lambda), its log group, the task role (the ingest function's data permissions, granted by
  the stack) and the execution role (image pull, logs);
- the stop handler: a function of the same image (CMD ``lakeroute.task.on_stopped``) fed by
  an EventBridge rule on the cluster's STOPPED tasks; it starts a failed task again until
  ``LAKEROUTE_TASK_MAX_ATTEMPTS``, then quarantines the object and counts
  ``LargeObjectTasksFailed``. Events it could not take (delivery or every retry failed) land
  in a dead-letter queue (an alarm, ``stacks.monitoring``);
- metric filters on the task's log group: a task's EMF lines reach CloudWatch Logs through
  the awslogs driver, which (unlike Lambda) does not extract EMF metrics; the filters count
  the task's object outcomes into the same ``ObjectsCommitted``/``...Quarantined``/... metrics
  (one object per task, so one per outcome), so the quarantine alarm sees the tasks too.

The network (VPC without NAT, security group) is ``stacks.network.TaskNetwork``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda import Tracing
from constructs import Construct

from .functions import FunctionSettings, ImageFunction
from .image import STOPPED_TASK_CMD, TASK_ENTRY_POINT, TASK_WORKING_DIRECTORY, lakeroute_task_image
from .nag import acknowledge
from .network import TaskNetwork
from .queue import DLQ_RETENTION_PERIOD

CONTAINER_NAME = "lakeroute"  # LAKEROUTE_TASK_CONTAINER (the runtime's default too)
TMP_VOLUME = "tmp"
ECS_TASKS = "ecs-tasks.amazonaws.com"
# What the ingest function and the stop handler call: RunTask (lakeroute/aws/large_objects.py
# hand_off), passing the task's two roles to ECS. No tags, no DescribeTasks: the stop event
# carries the task's overrides, exit codes and stop reason.
RUN_TASK_ACTIONS = ("ecs:RunTask",)
PASS_ROLE_ACTIONS = ("iam:PassRole",)
# The stop handler: a small event handler that imports the whole runtime (get_runtime) and
# may copy a large object into the quarantine (a server-side multipart copy).
STOP_HANDLER_MEMORY_MB = 1024
STOP_HANDLER_TIMEOUT = Duration.minutes(15)
# EventBridge -> Lambda delivery, then Lambda's own asynchronous retries of a failed handler
# (RunTask throttled, no Fargate capacity): after both, the event goes to the DLQ.
EVENT_RETRY_ATTEMPTS = 10
EVENT_MAX_AGE = Duration.hours(6)
HANDLER_RETRY_ATTEMPTS = 2
# The task's outcome counts, from its EMF lines (lakeroute/handler.py publish).
TASK_OUTCOME_METRICS = ("ObjectsCommitted", "ObjectsSkipped", "ObjectsQuarantined", "ObjectsFailed")


@dataclass(frozen=True, kw_only=True)
class TaskSize:
    """Fargate size of the large-object task (stage keys task_cpu, task_memory_mb, ...)."""

    cpu: int
    memory_mb: int
    ephemeral_storage_gb: int


class LargeObjectTier(Construct):
    """Cluster, task definition, stop handler (+ rule and DLQ) and the tier's environment."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        network: TaskNetwork,
        environment: Mapping[str, str],
        size: TaskSize,
        threshold_bytes: int,
        max_attempts: int,
        container_insights: bool,
        metrics_namespace: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.network = network
        self.family = f"{stack.stack_name}-large-object"

        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc,
            container_insights_v2=(ecs.ContainerInsights.ENABLED if container_insights
                                   else ecs.ContainerInsights.DISABLED),
        )
        if not container_insights:
            acknowledge(
                self.cluster, "AwsSolutions-ECS4",
                "Container Insights is a stage choice (task_container_insights): off where the "
                "per-task CPU/memory metrics are not worth their cost; each task still logs to "
                "CloudWatch Logs and its outcome is counted by metric filters and the stop handler.",
            )

        # ------------------------------------------------------------ the task
        self.log_group = logs.LogGroup(
            self, "TaskLogGroup", retention=log_retention, removal_policy=removal_policy,
        )
        self.execution_role = iam.Role(
            self, "ExecutionRole", assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description="lakeroute: ECS pulls the large-object task's image and ships its logs",
        )
        self.task_role = iam.Role(
            self, "TaskRole",
            # Only ECS tasks of this account and region may assume it (confused deputy).
            assumed_by=iam.ServicePrincipal(ECS_TASKS, conditions={
                "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:*"},
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            }),
            description="lakeroute: large-object task (the ingest function's data permissions)",
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self, "TaskDefinition",
            family=self.family,
            cpu=size.cpu,
            memory_limit_mib=size.memory_mb,
            ephemeral_storage_gib=size.ephemeral_storage_gb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,  # the image's platform (stacks/image.py)
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_role=self.task_role,
            execution_role=self.execution_role,
            volumes=[ecs.Volume(name=TMP_VOLUME)],  # on the task's ephemeral storage
        )
        task_environment = {
            **environment,
            "HOME": "/tmp",
            # As in the function (half its memory): the rest is for Arrow and PyIceberg.
            "LAKEROUTE_DUCKDB_MEMORY": f"{size.memory_mb // 2}MB",
        }
        self.container = self.task_definition.add_container(
            "Container",
            container_name=CONTAINER_NAME,
            image=lakeroute_task_image(self, "Image"),
            entry_point=list(TASK_ENTRY_POINT),
            working_directory=TASK_WORKING_DIRECTORY,
            environment=task_environment,
            readonly_root_filesystem=True,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="task", log_group=self.log_group),
            essential=True,
        )
        acknowledge(
            self.execution_role, "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (the registry login before the image pull) has no "
            "resource-level permissions; the pull itself is limited to the CDK assets repository.",
        )
        self.container.add_mount_points(ecs.MountPoint(
            container_path="/tmp", source_volume=TMP_VOLUME, read_only=False))
        acknowledge(
            self.task_definition, "AwsSolutions-ECS2",
            "The task's environment holds the same configuration as the ingest function's: table "
            "names, s3:// locations, the stage, log level and metric names; no secret (AWS "
            "credentials come from the task role).",
        )
        for name in TASK_OUTCOME_METRICS:
            logs.MetricFilter(
                self, f"TaskMetric-{name}",
                log_group=self.log_group,
                # The stage totals (dimension service only): not a per-route document, which
                # carries route and table (Powertools flushes one dimension set per document).
                filter_pattern=logs.FilterPattern.all(
                    logs.FilterPattern.exists("$.service"),
                    logs.FilterPattern.not_exists("$.route"),
                    logs.FilterPattern.number_value(f"$.{name}[0]", ">", 0),
                ),
                metric_namespace=metrics_namespace,
                metric_name=name,
                metric_value="1",
                dimensions={"service": "$.service"},
            )

        # ------------------------------------------------------------ what a hand-off needs
        self.environment: dict[str, str] = {
            "LAKEROUTE_LARGE_OBJECT_BYTES": str(threshold_bytes),
            "LAKEROUTE_TASK_CLUSTER": self.cluster.cluster_name,
            # The revision of this deploy (its ARN): what is deployed is what runs, and the
            # grant needs no wildcard. CloudFormation deregisters the previous revision only in
            # its cleanup phase, after every function has the new ARN.
            "LAKEROUTE_TASK_DEFINITION": self.task_definition.task_definition_arn,
            "LAKEROUTE_TASK_CONTAINER": CONTAINER_NAME,
            "LAKEROUTE_TASK_SUBNETS": Fn.join(",", network.subnet_ids),
            "LAKEROUTE_TASK_SECURITY_GROUPS": network.security_group.security_group_id,
            "LAKEROUTE_TASK_PUBLIC_IP": "true",  # public subnets, no NAT (stacks/network.py)
            "LAKEROUTE_TASK_MAX_ATTEMPTS": str(max_attempts),
        }

        # ------------------------------------------------------------ the stop handler
        # The dead-letter queue of the EventBridge target and of the handler's asynchronous
        # invocations (cdk-nag's SQS3 knows a target DLQ for what it is).
        self.dead_letter_queue = sqs.Queue(
            self, "StoppedTaskDeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION_PERIOD,
            removal_policy=removal_policy,
        )
        handler = ImageFunction(
            self, "StoppedTaskHandler",
            cmd=STOPPED_TASK_CMD,
            description="large-object tier: restart failed Fargate tasks, quarantine after the last",
            settings=FunctionSettings(
                memory_mb=STOP_HANDLER_MEMORY_MB,
                timeout=STOP_HANDLER_TIMEOUT,
                ephemeral_storage_mb=512,
                environment={**environment, **self.environment},
                log_retention=log_retention,
                removal_policy=removal_policy,
                tracing=Tracing.DISABLED,  # one call per stopped task; its logs suffice
            ),
            dead_letter_queue=self.dead_letter_queue,
        )
        self.stop_function = handler.function
        self.stop_role = handler.role
        self.stop_function.configure_async_invoke(
            retry_attempts=HANDLER_RETRY_ATTEMPTS, max_event_age=EVENT_MAX_AGE)
        self.rule = events.Rule(
            self, "TaskStopped",
            description=f"{stack.stack_name}: STOPPED large-object tasks to the stop handler",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={"clusterArn": [self.cluster.cluster_arn], "lastStatus": ["STOPPED"]},
            ),
            targets=[targets.LambdaFunction(
                self.stop_function,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=EVENT_RETRY_ATTEMPTS,
                max_event_age=EVENT_MAX_AGE,
            )],
        )
        self.grant_hand_off(self.stop_role)

    # ------------------------------------------------------------------ grants

    def grant_hand_off(self, role: iam.Role) -> None:
        """``ecs:RunTask`` of the task definition (this revision) in this cluster, passing the
        task's two roles to ECS only."""
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LargeObjectRunTask",
            actions=list(RUN_TASK_ACTIONS),
            resources=[self.task_definition.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LargeObjectPassRole",
            actions=list(PASS_ROLE_ACTIONS),
            resources=[self.task_role.role_arn, self.execution_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": ECS_TASKS}},
        ))
