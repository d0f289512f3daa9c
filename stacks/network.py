"""The network of the large-object tasks: a VPC without NAT gateways.

Fargate tasks need a subnet. NAT gateways would cost ~$32/month each plus data processing,
for tasks that run now and then, so the tasks run in PUBLIC subnets (2 AZs) with a public IP
and reach AWS through:

- gateway endpoints (free) for S3 (landing, warehouse, quarantine, ECR image layers) and
  DynamoDB (routes, ledger): that traffic stays on the AWS network;
- the internet gateway for the rest (Glue, ECR API, CloudWatch Logs, STS): Glue has no
  gateway endpoint; an interface endpoint would cost ~$7/month per AZ (an option for a
  stage that wants no public IPs: add it and set ``assignPublicIp`` off).

Nothing can connect in: the security group has no ingress rule, and egress is HTTPS (443)
only (the VPC's DNS resolver is not filtered by security groups). The VPC's default security
group is emptied and flow logs (every accepted and rejected flow) go to CloudWatch Logs with
the stage's retention.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

VPC_CIDR = "10.64.0.0/20"
SUBNET_CIDR_MASK = 24  # 251 task addresses per AZ
AZ_COUNT = 2
TASK_EGRESS_PORT = 443


class TaskNetwork(Construct):
    """VPC (public subnets in 2 AZs, no NAT), S3 and DynamoDB gateway endpoints, flow logs,
    and the tasks' security group (egress 443 only)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.flow_log_group = logs.LogGroup(
            self, "FlowLogGroup", retention=log_retention, removal_policy=removal_policy,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=AZ_COUNT,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(
                name="tasks", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=SUBNET_CIDR_MASK,
                # The task's public IP comes from RunTask (assignPublicIp), not the subnet.
                map_public_ip_on_launch=False,
            )],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            flow_logs={"All": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
                traffic_type=ec2.FlowLogTrafficType.ALL,
            )},
            restrict_default_security_group=True,
        )
        self.subnets = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC)
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="lakeroute large-object tasks: no ingress, HTTPS egress only",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(TASK_EGRESS_PORT),
            "HTTPS to AWS APIs (S3 and DynamoDB through the gateway endpoints)",
        )

    @property
    def subnet_ids(self) -> list[str]:
        return list(self.subnets.subnet_ids)
