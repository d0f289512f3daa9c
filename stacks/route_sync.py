"""Deploy-time route sync: a custom resource that pushes the route set to DynamoDB.

Its handler is ``lakeroute.sync.on_event`` in the same image as the ingest function (only
the image CMD differs), behind the CDK provider framework (which handles the CloudFormation
response protocol, so the handler just returns or raises). Properties:

- ``Routes``: JSON list of ``Route.to_item()`` for every route file, with LOGICAL names;
- ``RoutesHash``: sha256 of ``Routes``, so any route change is an Update that reruns the sync
  (upsert current routes, delete stale ones, create/evolve the declared Iceberg tables);
- ``Buckets``: {logical bucket: physical bucket} and ``Namespaces``: {namespace: Glue
  database} of the stage (CloudFormation resolves the pseudo parameters inside them). The
  handler writes every route under its physical names, so at run time the function matches
  the buckets of S3 events and commits to the stage's databases. A changed mapping is an
  Update too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import CustomResource, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from .functions import FunctionSettings, ImageFunction
from .nag import acknowledge_wildcard_resource
from .route_plan import routes_hash

RESOURCE_TYPE = "Custom::LakerouteRouteSync"


class RouteSync(Construct):
    """The sync function, its provider and the custom resource fed with the route set."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: FunctionSettings,
        routes_json: str,
        buckets: Mapping[str, str],
        namespaces: Mapping[str, str],
        cmd: Sequence[str],
    ) -> None:
        super().__init__(scope, id)
        image_fn = ImageFunction(
            self, "Handler", cmd=cmd, settings=settings,
            description="deploy-time route sync (routing table and Iceberg tables)",
        )
        self.function = image_fn.function
        self.role = image_fn.role

        provider_logs = logs.LogGroup(
            self, "ProviderLogGroup", retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        provider_role = iam.Role(
            self, "ProviderRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="lakeroute: custom-resource provider framework for the route sync",
        )
        # A role of our own instead of the default one (AWSLambdaBasicExecutionRole): it may
        # write to the framework's log group and invoke the sync function, nothing else.
        provider_logs.grant_write(provider_role)
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            framework_on_event_role=provider_role,
            log_group=provider_logs,
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            properties={"Routes": routes_json, "RoutesHash": routes_hash(routes_json),
                        "Buckets": dict(buckets), "Namespaces": dict(namespaces)},
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge_wildcard_resource(
            provider_role,
            f"{self.function.function_arn}:*",
            "The provider framework may invoke the route-sync function by any version or alias "
            "(the ':*' qualifier CDK adds); scoped to that single function.",
        )
