"""Generate ``src/lightkeeper/catalogue/errors.json``, the single error catalogue.

Why this exists: the reference material only gives Chinese text for most Lighthouse error
codes, English for some of them (facts Appendix A), and the API 3.0 common codes in a separate
table (facts section 5.3). The server needs one bilingual table of ``str.format`` templates keyed
by message id (``Code`` or ``Code#variant``). This script merges those sources with the
hand-written templates and translations in ``HAND`` and checks the result. It is deterministic,
so re-running it must not change the committed file.

Usage: ``python tools/gen_errors.py [--reference DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
DEFAULT_OUT = REPO / "src" / "lightkeeper" / "catalogue" / "errors.json"

EN = "en-US"
ZH = "zh-CN"

# Hand-written text, keyed by message id. A value may give en-US, zh-CN or both; whatever it
# gives wins over the reference files. Values here are already str.format templates.
HAND: dict[str, dict[str, str]] = {
    # --- Templates the server fills in (its tests assert these exact strings) ---
    "MissingParameter": {
        EN: "The request is missing a required parameter `{name}`.",
        ZH: "缺少必要参数`{name}`。",
    },
    "UnknownParameter": {
        EN: "The parameter `{name}` is not recognized.",
        ZH: "参数`{name}`未定义。",
    },
    "InvalidParameter": {
        EN: "Parameter `{name}` type error.",
        ZH: "参数`{name}`类型错误。",
    },
    "InvalidParameterValue": {
        EN: "Invalid value `{value}` for parameter `{name}`.",
        ZH: "参数`{name}`取值`{value}`错误。",
    },
    "InvalidParameterValue#plain": {
        EN: "Invalid parameter value.",
        ZH: "参数取值错误。",
    },
    "InvalidAction": {
        EN: "The request `Action` is invalid or not found.",
        ZH: "请求的`Action`不存在或无效。",
    },
    "NoSuchVersion": {
        EN: "The requested version `{version}` of action `{action}` does not exist.",
        ZH: "接口`{action}`的版本`{version}`不存在。",
    },
    "UnsupportedRegion": {
        EN: "The `{action}` action does not support the region `{region}`.",
        ZH: "接口`{action}`不支持地域`{region}`。",
    },
    "UnsupportedProtocol": {
        EN: "The HTTP method `{method}` is not supported; only GET and POST are.",
        ZH: "不支持 HTTP 方法`{method}`，仅支持 GET 和 POST 请求。",
    },
    "RequestSizeLimitExceeded": {
        EN: "The request size exceeds the upper limit `{limit}` bytes.",
        ZH: "请求包超过限制大小`{limit}`字节。",
    },
    "RequestLimitExceeded": {
        EN: "Your current request times equals to `{count}` in a second, which exceeds the"
        " frequency limit `{limit}` for a second. Please reduce the frequency of calls.",
        ZH: "您当前每秒请求次数为`{count}`，超过了每秒频率上限`{limit}`，请降低调用频率。",
    },
    "AuthFailure.SignatureExpire": {
        EN: "The signature is expired, please request again.",
        ZH: "签名过期，请重新请求。",
    },
    "AuthFailure.SignatureFailure": {
        EN: "The provided credentials could not be validated."
        " Please check your signature is correct.",
        ZH: "请求签名验证失败，请检查您的签名计算是否正确。",
    },
    "InvalidParameter#body": {
        EN: "The request body or query string cannot be parsed as API parameters.",
        ZH: "请求包体或查询字符串无法解析为接口参数。",
    },
    "InvalidRequest#content_type": {
        EN: "The Content-Type `{content_type}` is not supported; use application/json"
        " (TC3-HMAC-SHA256) or application/x-www-form-urlencoded (HmacSHA1/HmacSHA256).",
        ZH: "不支持的 Content-Type `{content_type}`，请使用 application/json（TC3-HMAC-SHA256）"
        "或 application/x-www-form-urlencoded（HmacSHA1/HmacSHA256）。",
    },
    "AuthFailure.SignatureFailure#replay": {
        EN: "The request has been received before"
        " (duplicate `Nonce` within the signature validity window).",
        ZH: "请求重放：签名有效期内`Nonce`重复。",
    },
    "AuthFailure.SecretIdNotFound": {
        EN: "The SecretId is not found, please ensure that your SecretId is correct.",
        ZH: "SecretId不存在，请输入正确的密钥。",
    },
    "AuthFailure.InvalidAuthorization": {
        EN: "Authorization in the request header is invalid: {reason}.",
        ZH: "请求头部的 Authorization 不符合腾讯云标准：{reason}。",
    },
    "AuthFailure.TokenFailure": {
        EN: "The token is invalid or has expired.",
        ZH: "Token 错误或已过期。",
    },
    "InternalError": {
        EN: "An internal error has occurred. Retry your request, but if the problem persists,"
        " contact us with details by filing a ticket. RequestId: {request_id}.",
        ZH: "内部错误，请稍后重试。若无法解决，请提交工单并附上 RequestId：{request_id}。",
    },
    "UnauthorizedOperation.NoPermission": {
        EN: "you are not authorized to perform operation ({action})\n"
        "resource ({resource}) has no permission",
        ZH: "您没有执行操作 ({action}) 的权限\n资源 ({resource}) 无权限",
    },
    "UnauthorizedOperation.NoPermission#plain": {
        EN: "No permission.",
        ZH: "无权限。",
    },
    "UnsupportedOperation.InvalidSnapshotState#denied": {
        EN: "The snapshot `{snapshot_id}` is in `{state}` status"
        " and does not support this operation",
        ZH: "快照 `{snapshot_id}` 处于 `{state_zh}` 状态中，不支持该操作",
    },
    "UnsupportedOperation.DiskLatestOperationUnfinished#denied": {
        EN: "The disk `{disk_id}` is `{operation_en}` and does not support this operation",
        ZH: "磁盘 `{disk_id}` 正在进行 `{operation_zh}` 操作，不支持该操作",
    },
    "UnsupportedOperation.InvalidInstanceState#denied": {
        EN: "The request does not support the instance `{instance_id}`"
        " which is in the state of `{state}`.",
        ZH: "实例 `{instance_id}` 处于 `{state_zh}` 状态中，不支持该操作。",
    },
    "InvalidParameter.ParameterConflict": {
        EN: "Invalid parameter: the parameters conflict.",
    },
    "InvalidParameter.ParameterConflict#ids_filters": {
        EN: "You cannot specify `{ids}` and `Filters` at the same time.",
        ZH: "参数不支持同时指定 `{ids}` 和 `Filters`。",
    },
    # Parameter-value refusals that name the parameter (issue #11: numbers, tags, names).
    "InvalidParameterValue.OutOfRange#name": {
        EN: "The value of parameter `{name}` is not within the valid range.",
        ZH: "参数`{name}`的取值不在合法范围内。",
    },
    "InvalidParameterValue.TooLong#name": {
        EN: "The value of parameter `{name}` is longer than {limit} characters.",
        ZH: "参数`{name}`的取值超过 {limit} 个字符。",
    },
    "InvalidParameterValue#characters": {
        EN: "The value of parameter `{name}` contains characters that are not allowed.",
        ZH: "参数`{name}`的取值包含不允许的字符。",
    },
    "InvalidParameterValue#reserved_prefix": {
        EN: "The value of parameter `{name}` starts with a reserved prefix"
        " (qcloud, tencent or project).",
        ZH: "参数`{name}`的取值以保留前缀（qcloud、tencent 或 project）开头。",
    },
    "FailedOperation.SnapshotOperationFailed#denied": {
        EN: "The snapshot `{snapshot_id}` failed its data check and cannot be rolled back to",
        ZH: "快照 `{snapshot_id}` 数据校验失败，不支持回滚",
    },
    # --- Section 5.3 rows whose text is truncated or lacks a zh (or en) half ---
    "AuthFailure.InvalidSecretId": {
        EN: "Invalid key (not a TencentCloud API key type).",
    },
    "DryRunOperation": {
        EN: "DryRun operation: the request would have succeeded,"
        " but the DryRun parameter was passed.",
        ZH: "DryRun 操作，代表请求将会是成功的，只是多传了 DryRun 参数。",
    },
    "InvalidRequest": {ZH: "请求 body 的 multipart 格式错误。"},
    "IpInBlacklist": {
        EN: "Your IP is in the uin IP blacklist.",
        ZH: "您的 IP 在主账号 IP 黑名单中。",
    },
    "IpNotInWhitelist": {
        EN: "Your IP is not in the uin IP whitelist.",
        ZH: "您的 IP 不在主账号 IP 白名单中。",
    },
    "NoSuchProduct": {ZH: "产品不存在。"},
    "ResponseSizeLimitExceeded": {ZH: "返回包超过限制大小。"},
    # --- English for Lighthouse codes that Appendix A does not translate ---
    "AuthFailure": {EN: "CAM signature/authentication error."},
    "AuthFailure.InvalidHeaderUin": {EN: "The Uin in the request header is invalid."},
    "AuthFailure.InvalidRegion": {
        EN: "This region is not available yet. Please choose another region.",
    },
    "FailedOperation.BalanceInsufficient": {EN: "Insufficient account balance."},
    "FailedOperation.CreateBlueprintFailed": {EN: "Failed to create the image."},
    "FailedOperation.CreateDisksFailed": {EN: "Failed to create the cloud disk."},
    "FailedOperation.CreateInstancesFailed": {EN: "Failed to create the instance."},
    "FailedOperation.CreateKeyPairFailed": {EN: "Failed to create the key pair."},
    "FailedOperation.DeleteKeyPairFailed": {EN: "Failed to delete the key pair."},
    "FailedOperation.DeleteResourcesFailed": {EN: "Failed to delete the resources."},
    "FailedOperation.DescribeBlueprintBundlesFailed": {
        EN: "Failed to query the image bundles. Please try again later.",
    },
    "FailedOperation.DescribeBlueprintQuotaFailed": {EN: "Failed to query the image quota."},
    "FailedOperation.DescribeBlueprintsFailed": {
        EN: "Failed to query the images. Please try again later.",
    },
    "FailedOperation.DescribeBundleDiscountFailed": {EN: "Failed to query the bundle discount."},
    "FailedOperation.DescribeBundlesFailed": {EN: "Failed to query the bundles."},
    "FailedOperation.DescribeDiskConfigQuotaFailed": {
        EN: "Failed to query the cloud disk quota.",
    },
    "FailedOperation.DescribeDisksReturnableError": {
        EN: "Failed to query whether the cloud disks can be returned.",
    },
    "FailedOperation.DescribeImagesFailed": {EN: "Failed to query the CVM image list."},
    "FailedOperation.DescribeInstancesModificationError": {
        EN: "Failed to query the bundles available for instance modification.",
    },
    "FailedOperation.DescribeInstancesReturnableError": {
        EN: "An error occurred when querying whether the instances can be returned.",
    },
    "FailedOperation.DescribeInstancesTrafficPackagesFailed": {
        EN: "Failed to query the traffic packages.",
    },
    "FailedOperation.DescribeResourcesReturnableError": {
        EN: "The resource query returned content that does not meet the requirements.",
    },
    "FailedOperation.DestroyResourcesFailed": {
        EN: "Failed to destroy the resources. Please try again later.",
    },
    "FailedOperation.DockerContainersListTooLarge": {EN: "The container list is too long."},
    "FailedOperation.DockerOperationFailed": {
        EN: "The operation on the specified Docker environment failed."
        " Please check the Docker environment.",
    },
    "FailedOperation.FirewallOperationFailed": {EN: "The firewall operation failed."},
    "FailedOperation.FirewallRulesOperationFailed": {
        EN: "The operation on the firewall rules failed.",
    },
    "FailedOperation.GetSnapshotAllocQuotaLockError": {
        EN: "Failed to get the snapshot quota lock.",
    },
    "FailedOperation.ImageOperationFailed": {EN: "Failed to manipulate the image."},
    "FailedOperation.ImportKeyPairFailed": {EN: "Failed to import the key pair."},
    "FailedOperation.InitCommandContentTooLong": {
        EN: "The length of the command content exceeds the limit.",
    },
    "FailedOperation.InsufficientBalance": {
        EN: "Insufficient account balance. Please top up in time.",
    },
    "FailedOperation.InvalidCommandNotFound": {EN: "The command is not found."},
    "FailedOperation.IsolateResourcesFailed": {EN: "Failed to return the resources."},
    "FailedOperation.McpServerOperationFailed": {EN: "The MCP Server operation failed."},
    "FailedOperation.ModifyInstancesBundleFailed": {EN: "Failed to change the instance bundle."},
    "FailedOperation.ModifyResourcesAttributeFailed": {
        EN: "Failed to modify the resource attributes. Please try again later.",
    },
    "FailedOperation.ModifyResourcesRenewFlagFailed": {
        EN: "Failed to modify the auto-renewal setting of the resources.",
    },
    "FailedOperation.NumLimitError": {
        EN: "The purchase quantity exceeds the maximum limit.",
    },
    "FailedOperation.RenewResourcesFailed": {EN: "Failed to renew the resources."},
    "FailedOperation.ResizeDisksFailed": {
        EN: "Failed to expand the cloud disk. Please try again later.",
    },
    "FailedOperation.ShareBlueprintAcrossAccountFailed": {
        EN: "Failed to share the image across accounts. Please try again later.",
    },
    "FailedOperation.TATInvocationNotFinished": {EN: "The TAT command has not finished."},
    "FailedOperation.TradeCallBillingGatewayFailed": {
        EN: "Failed to call the billing gateway service. Please try again later.",
    },
    "FailedOperation.TradeGetPriceFailed": {EN: "Failed to get the price from billing."},
    "FailedOperation.UnableToCreateBlueprint": {
        EN: "Operation failed: unable to create the custom image.",
    },
    "FailedOperation.UnableToCreateInstances": {EN: "Unable to create the instance."},
    "FailedOperation.UnableToSyncBlueprint": {
        EN: "The current image status does not allow cross-region sync.",
    },
    "InternalError.DescribeInstancesModification": {
        EN: "Failed to query whether the instance configuration can be modified.",
    },
    "InternalError.DescribeInstancesModificationError": {
        EN: "Failed to query whether the instance configuration can be modified.",
    },
    "InternalError.DescribeInstancesReturnableError": {
        EN: "Failed to query whether the instances can be returned.",
    },
    "InternalError.DescribeInstancesTrafficPackagesFailed": {
        EN: "An error occurred when querying the instance traffic packages.",
    },
    "InternalError.DescribeResourcesReturnableError": {
        EN: "The resource query returned content that does not meet the requirements.",
    },
    "InternalError.InvalidActionNotFound": {EN: "The API cannot be found."},
    "InternalError.InvalidBundlePrice": {EN: "The bundle price is incorrect."},
    "InternalError.TradeCallBillingGatewayFailed": {
        EN: "Failed to call the billing gateway service.",
    },
    "InternalError.TradeGetPriceFailed": {EN: "Failed to get the price."},
    "InvalidParameter.BundleAndBlueprintNotMatch": {
        EN: "The bundle and the image do not match.",
    },
    "InvalidParameter.BundleIdNotFound": {EN: "The bundle ID is not defined for the product."},
    "InvalidParameter.Conflict": {EN: "The parameters conflict."},
    "InvalidParameter.ConflictParameter": {EN: "The parameters conflict."},
    "InvalidParameter.CreatingGamePortalInstanceNotSupportParameter": {
        EN: "This parameter is not supported when creating a game portal instance.",
    },
    "InvalidParameter.FirewallRulesDuplicated": {
        EN: "Invalid parameter: duplicate firewall rules.",
    },
    "InvalidParameter.FirewallRulesExist": {
        EN: "Invalid parameter: the firewall rules already exist.",
    },
    "InvalidParameter.GamePortalInstanceBlueprintInvalid": {
        EN: "The game portal instance image is invalid.",
    },
    "InvalidParameter.GamePortalInstanceOnlySupportCurrentBlueprint": {
        EN: "The game portal instance only supports the current image.",
    },
    "InvalidParameter.InstanceDisplayAreaNotSupportParameter": {
        EN: "The instance display area does not support this parameter.",
    },
    "InvalidParameter.InstanceOperationUnsupportedParameter": {
        EN: "The current operation of the instance does not support this operation.",
    },
    "InvalidParameter.InvalidFilterName": {EN: "The `Filter` parameter name is incorrect."},
    "InvalidParameter.MustSpecifyOneAttributeToModify": {
        EN: "You must specify one attribute to modify.",
    },
    "InvalidParameterValue.AccountIdInvalidAccountArea": {
        EN: "The image cannot be shared with an account on a different site.",
    },
    "InvalidParameterValue.AccountIdSameWithUin": {EN: "The account is the current user."},
    "InvalidParameterValue.AccountIdsNotExist": {EN: "The account ID does not exist."},
    "InvalidParameterValue.AccountIdsNotOwnerAccount": {
        EN: "The account ID is not a root account.",
    },
    "InvalidParameterValue.BlueprintConfigNotMatch": {
        EN: "The instance configuration does not meet the requirements of the specified image.",
    },
    "InvalidParameterValue.BlueprintId": {
        EN: "Invalid image ID: the OS type cannot be switched when reinstalling the instance.",
    },
    "InvalidParameterValue.BlueprintIdMalformed": {
        EN: "Invalid parameter value: the image ID format is invalid.",
    },
    "InvalidParameterValue.BundleAndBlueprintNotMatch": {
        EN: "The bundle and the image do not match.",
    },
    "InvalidParameterValue.BundleNotSupportBlueprintPlatform": {
        EN: "The selected bundle does not support the OS platform type of the image.",
    },
    "InvalidParameterValue.CcnIdMalformed": {EN: "The CCN instance ID format is invalid."},
    "InvalidParameterValue.ClientTokenTooLong": {
        EN: "The length of the client token exceeds the limit.",
    },
    "InvalidParameterValue.DestinationRegionSameAsSourceRegion": {
        EN: "The destination region is the same as the source region.",
    },
    "InvalidParameterValue.DiskBackupIdMalformed": {
        EN: "Invalid parameter value: the cloud disk backup point ID format is invalid.",
    },
    "InvalidParameterValue.DiskBackupNameTooLong": {
        EN: "The specified cloud disk backup point name cannot exceed the maximum length.",
    },
    "InvalidParameterValue.DiskBackupQuotaLessThanCurrentDiskBackupNum": {
        EN: "The cloud disk backup point quota is lower than"
        " the current number of cloud disk backup points.",
    },
    "InvalidParameterValue.DiskBackupQuotaLessThenCurrentDiskBackupNum": {
        EN: "The cloud disk backup point quota is less than"
        " the current number of cloud disk backup points.",
    },
    "InvalidParameterValue.DiskInstanceZoneNotMatch": {
        EN: "The availability zone of the cloud disk does not match that of the instance.",
    },
    "InvalidParameterValue.DiskNameTooLong": {
        EN: "The length of the disk name exceeds the limit.",
    },
    "InvalidParameterValue.DiskSizeSmallerThanCurrentDiskSize": {
        EN: "The specified cloud disk size is smaller than the current cloud disk size.",
    },
    "InvalidParameterValue.DuplicateParameterValue": {
        EN: "The parameter `KeyName` already exists and is duplicated.",
    },
    "InvalidParameterValue.DuplicatedFirewallTemplateRule": {
        EN: "The firewall template rule already exists.",
    },
    "InvalidParameterValue.FieldsCompare": {EN: "The column value is incorrect."},
    "InvalidParameterValue.FirewallRuleDescriptionTooLong": {
        EN: "The length of the firewall rule description exceeds the limit.",
    },
    "InvalidParameterValue.FirewallTemplateIdMalformed": {
        EN: "The firewall template ID format is invalid.",
    },
    "InvalidParameterValue.InvalidBlueprintId": {EN: "The image ID is invalid."},
    "InvalidParameterValue.InvalidBlueprintPlatformType": {EN: "The image OS type is invalid."},
    "InvalidParameterValue.InvalidBlueprintState": {EN: "The image state value is invalid."},
    "InvalidParameterValue.InvalidBlueprintType": {EN: "The image type is invalid."},
    "InvalidParameterValue.InvalidBundle": {EN: "Invalid bundle parameter."},
    "InvalidParameterValue.InvalidBundleBlueprintCombination": {
        EN: "Invalid combination of bundle and image.",
    },
    "InvalidParameterValue.InvalidConsoleDisplayTypes": {
        EN: "The console display type is invalid.",
    },
    "InvalidParameterValue.InvalidCurInstanceDeadline": {
        EN: "The current instance expiration time cannot be earlier than"
        " the cloud disk expiration time.",
    },
    "InvalidParameterValue.InvalidDiskSize": {
        EN: "The specified cloud disk size does not meet the requirements.",
    },
    "InvalidParameterValue.InvalidDiskType": {EN: "Invalid cloud disk type."},
    "InvalidParameterValue.InvalidImageIdMalformed": {EN: "The image ID format is invalid."},
    "InvalidParameterValue.InvalidKeyPairNameEmpty": {EN: "Invalid parameter value."},
    "InvalidParameterValue.InvalidKeyPairNameIncludeIllegalChar": {
        EN: "Invalid key pair name.",
    },
    "InvalidParameterValue.InvalidKeyPairNameTooLong": {EN: "Invalid parameter length."},
    "InvalidParameterValue.InvalidParameterCombination": {
        EN: "Invalid parameter combination.",
    },
    "InvalidParameterValue.InvalidPassword": {EN: "The password in the parameters is invalid."},
    "InvalidParameterValue.InvalidSceneIdMalformed": {EN: "The scene ID is invalid."},
    "InvalidParameterValue.KeyPairIdMalformed": {
        EN: "Invalid parameter value: the key pair ID format is invalid.",
    },
    "InvalidParameterValue.KeyPairPublicKeyDuplicated": {
        EN: "The public key in this key pair already exists in the system and cannot be reused.",
    },
    "InvalidParameterValue.KeyPairPublicKeyMalformed": {
        EN: "The specified public key format is incorrect.",
    },
    "InvalidParameterValue.Length": {EN: "The parameter value length is invalid."},
    "InvalidParameterValue.McpServerEnvInvalid": {EN: "The environment variables are invalid."},
    "InvalidParameterValue.McpServerLimitExceeded": {
        EN: "The number of MCP Servers exceeds the limit.",
    },
    "InvalidParameterValue.McpServerListTooLarge": {EN: "The MCP Server list is too large."},
    "InvalidParameterValue.NotAllowToChangePlatformType": {
        EN: "Changing the platform type is not allowed.",
    },
    "InvalidParameterValue.NotSupportCrossBorderSyncBlueprint": {
        EN: "Cross-border image sync is not supported.",
    },
    "InvalidParameterValue.NotSupportModifyInstanceBundleType": {
        EN: "The bundle type of the instance bundle does not support changing to the new bundle.",
    },
    "InvalidParameterValue.PlatformTypeNotSupportFileSystem": {
        EN: "The instance OS does not support this file system.",
    },
    "InvalidParameterValue.PlatformTypeNotSupportMountPoint": {
        EN: "The instance OS does not support the specified mount point.",
    },
    "InvalidParameterValue.RegionNotFound": {EN: "The region does not exist."},
    "InvalidParameterValue.RegionNotMatch": {EN: "The region does not match."},
    "InvalidParameterValue.RegionNotSupported": {EN: "Unsupported region."},
    "InvalidParameterValue.RegionUnavailable": {EN: "This region is unavailable."},
    "InvalidParameterValue.TooLarge": {
        EN: "Invalid parameter value: it is larger than the valid value.",
    },
    "InvalidParameterValue.TooLong": {
        EN: "The parameter value is too long and exceeds the maximum length.",
    },
    "InvalidParameterValue.TooSmall": {
        EN: "Invalid parameter value: it is smaller than the valid value.",
    },
    "InvalidParameterValue.UnavailableRegion": {EN: "The region is unavailable."},
    "InvalidParameterValue.ZoneInvalid": {EN: "Invalid availability zone."},
    "LimitExceeded.AttachDataDiskQuotaLimitExceeded": {
        EN: "The data disk attachment quota of the instance is insufficient,"
        " so the cloud disk cannot be attached.",
    },
    "LimitExceeded.BlueprintQuotaLimitExceeded": {
        EN: "Insufficient quota: the current custom image quota does not allow"
        " creating new custom images.",
    },
    "LimitExceeded.DiskBackupQuotaLimitExceeded": {
        EN: "The disk backup point quota is exceeded.",
    },
    "LimitExceeded.DiskQuotaLimitExceeded": {
        EN: "The current quota is insufficient to create a new cloud disk.",
    },
    "LimitExceeded.FirewallRulesLimitExceeded": {EN: "The firewall rule quota is exceeded."},
    "LimitExceeded.FirewallTemplateRuleQuotaLimitExceeded": {
        EN: "The firewall template rules exceed the quota.",
    },
    "LimitExceeded.InstanceQuotaLimitExceeded": {EN: "The instance quota is exceeded."},
    "LimitExceeded.IsolateResourcesLimitExceeded": {
        EN: "The number of resources to return exceeds the limit.",
    },
    "LimitExceeded.KeyPairLimitExceeded": {EN: "The key pair quota is exceeded."},
    "LimitExceeded.ShareBlueprintAcrossAccountQuotaLimitExceeded": {
        EN: "The current image quota is insufficient to share with the specified account.",
    },
    "LimitExceeded.SyncBlueprintQuotaLimitExceeded": {
        EN: "The image quota of the destination region is exceeded.",
    },
    "MissingParameter.BundleMissingParameterBlueprintId": {
        EN: "The bundle is missing the image ID parameter.",
    },
    "MissingParameter.MissingParameterPeriodCurInstanceDeadline": {
        EN: "The parameter Period or CurInstanceDeadline must be passed.",
    },
    "MissingParameter.OrderFieldRequired": {
        EN: "The parameter `OrderField` is required when the parameter `Order` is specified.",
    },
    "OperationDenied.BlueprintOperationInProgress": {
        EN: "The image is being manipulated. Please try again later.",
    },
    "OperationDenied.BundleNotSupportModify": {
        EN: "This instance does not support bundle upgrade.",
    },
    "OperationDenied.DiskBackupBusy": {
        EN: "The disk backup point is busy. Please try again later.",
    },
    "OperationDenied.DiskBackupOperationInProgress": {
        EN: "The disk backup point is being manipulated. Please try again later.",
    },
    "OperationDenied.DiskBusyForBackupOperation": {
        EN: "A backup point operation is in progress on the disk. Please try again later.",
    },
    "OperationDenied.DiskCreating": {EN: "The disk is being created."},
    "ResourceInUse.BlueprintModifyingSharePermission": {
        EN: "The sharing attribute of the image is being modified."
        " This operation is not supported.",
    },
    "ResourceInUse.DiskBackupInUse": {
        EN: "The disk backup point is in use. This operation is not supported.",
    },
    "ResourceInUse.ImageInUse": {EN: "The image is in use. This operation is not supported."},
    "ResourceInUse.KeyPairInUse": {EN: "The key pair is in use."},
    "ResourceNotFound.BlueprintNotFound": {
        EN: "The specified image does not exist."
        " Please check whether the BlueprintId of the image is correct.",
    },
    "ResourceNotFound.DiskAttachedHasNoInstanceId": {
        EN: "The instance associated with the attached disk does not exist.",
    },
    "ResourceNotFound.DiskBackupIdNotFound": {EN: "The disk backup point ID does not exist."},
    "ResourceNotFound.DiskBackupNotExists": {EN: "The disk backup point does not exist."},
    "ResourceNotFound.DiskBackupNotFound": {
        EN: "The disk backup point specified by the user does not exist.",
    },
    "ResourceNotFound.DiskIdNotFound": {EN: "The disk ID does not exist."},
    "ResourceNotFound.FirewallNotFound": {EN: "The firewall does not exist."},
    "ResourceNotFound.FirewallRulesNotFound": {EN: "The firewall rule does not exist."},
    "ResourceNotFound.FirewallTemplateNotFound": {EN: "The firewall template does not exist."},
    "ResourceNotFound.FirewallTemplateRuleNotFound": {
        EN: "The firewall template rule does not exist.",
    },
    "ResourceNotFound.ImageIdNotFound": {EN: "The image ID does not exist."},
    "ResourceNotFound.InstanceBlueprintNotFound": {EN: "The instance image does not exist."},
    "ResourceNotFound.InstanceDataDiskNotFound": {
        EN: "The instance has no attached data disk.",
    },
    "ResourceNotFound.KeyIdNotFound": {EN: "The key pair ID does not exist."},
    "ResourceNotFound.KeyPairNotFound": {EN: "The key pair does not exist."},
    "ResourceNotFound.McpServerNotFound": {EN: "The MCP Server does not exist."},
    "ResourceNotFound.McpServersPartialNotFound": {
        EN: "Some MCP Servers were not found. Please check.",
    },
    "ResourceNotFound.PrivateBlueprintNotFound": {EN: "The custom image does not exist."},
    "ResourceNotFound.RoleNotFound": {
        EN: "The service role does not exist. Please add this role to the account.",
    },
    "ResourceNotFound.SceneIdNotFound": {EN: "The scene ID was not found."},
    "ResourceUnavailable.BlueprintInvalid": {
        EN: "The specified instance image does not meet the requirements.",
    },
    "ResourceUnavailable.BlueprintUnavailable": {EN: "The image resource is unavailable."},
    "ResourceUnavailable.BundleUnavailable": {EN: "The bundle is unavailable."},
    "ResourceUnavailable.CannotApplyEmptyFirewallTemplate": {
        EN: "This firewall template cannot be applied.",
    },
    "ResourceUnavailable.DockerUnavailable": {EN: "The Docker resource is unavailable."},
    "ResourceUnavailable.FirewallTemplateInUse": {
        EN: "The firewall template is in use. This operation is not supported.",
    },
    "ResourceUnavailable.InvalidPurchaseRequestSource": {
        EN: "The current bundle cannot be purchased via API.",
    },
    "ResourceUnavailable.TATAgentUnavailable": {EN: "The TAT agent is unavailable."},
    "ResourceUnavailable.TATServiceError": {EN: "TAT service error."},
    "ResourcesSoldOut.BundleSoldOut": {EN: "The bundle is sold out."},
    "ResourcesSoldOut.PurchaseSourceHasNoBundleConfigs": {
        EN: "No configuration is available for the bundle.",
    },
    "ResourcesSoldOut.ZonesHasNoBundleConfigs": {
        EN: "No configuration is available for the bundle.",
    },
    "UnauthorizedOperation.CertificationNeedUpgrade": {
        EN: "Due to an account security upgrade, you need to complete your real-name"
        " information before purchasing cloud resources.",
    },
    "UnauthorizedOperation.InvalidToken": {EN: "Invalid token."},
    "UnauthorizedOperation.MFAExpired": {EN: "The MFA has expired."},
    "UnauthorizedOperation.MFANotFound": {EN: "The MFA does not exist."},
    "UnauthorizedOperation.NotCertification": {
        EN: "The account has not completed real-name verification. Payment failed.",
    },
    "UnsupportedOperation.ApplyDiskBackupToAnotherDisk": {
        EN: "Rolling back a disk backup point to another disk is not supported.",
    },
    "UnsupportedOperation.AssumeRoleFailed": {
        EN: "Failed to get role authorization."
        " Please grant the Lighthouse-related role and try again.",
    },
    "UnsupportedOperation.AttachCcnConditionUnsatisfied": {
        EN: "No instance can be associated with CCN.",
    },
    "UnsupportedOperation.AttachCcnFailed": {
        EN: "Failed to associate with CCN. Please check the CCN status and try again later.",
    },
    "UnsupportedOperation.BlueprintAlreadyShared": {
        EN: "The image has already been shared. This operation is not supported.",
    },
    "UnsupportedOperation.BlueprintCurStateInvalid": {
        EN: "The current image status does not support this operation.",
    },
    "UnsupportedOperation.BlueprintHasNotShared": {
        EN: "The image has not been shared. This operation is not supported.",
    },
    "UnsupportedOperation.BlueprintLatestOperationUnfinished": {
        EN: "The last operation of the image has not been completed.",
    },
    "UnsupportedOperation.BlueprintOccupied": {
        EN: "The image is in use. This operation is not supported.",
    },
    "UnsupportedOperation.BlueprintTypeNotSupportOperation": {
        EN: "The image type of this image does not support this operation.",
    },
    "UnsupportedOperation.CcnAlreadyAttached": {
        EN: "CCN is already associated and cannot be associated again.",
    },
    "UnsupportedOperation.CcnNotAttached": {
        EN: "CCN is not associated yet. This operation is not supported.",
    },
    "UnsupportedOperation.DescribeCcnAttachedInstancesFailed": {
        EN: "Failed to query the status of the instances associated with CCN."
        " Please try again later.",
    },
    "UnsupportedOperation.DetachCcnFailed": {
        EN: "Failed to disassociate from CCN. Please check the CCN status and try again later.",
    },
    "UnsupportedOperation.DiskBackupLatestOperationUnfinished": {
        EN: "The last operation of the disk backup point has not finished."
        " The current operation is not supported.",
    },
    "UnsupportedOperation.FirewallBusy": {EN: "The firewall is busy."},
    "UnsupportedOperation.FirewallVersionMismatch": {
        EN: "The specified firewall version does not match the current version.",
    },
    "UnsupportedOperation.ImageAlreadyShared": {
        EN: "The image has already been shared. This operation is not supported.",
    },
    "UnsupportedOperation.ImageOccupied": {
        EN: "The image is occupied by another operation. This operation is not supported."
        " Please try again later.",
    },
    "UnsupportedOperation.ImageUnableToShare": {EN: "The image cannot be shared."},
    "UnsupportedOperation.InstanceDisplayAreaNotSupportOperation": {
        EN: "The instance display area does not support this operation.",
    },
    "UnsupportedOperation.InstanceExpired": {
        EN: "The instance has expired. This operation is not supported.",
    },
    "UnsupportedOperation.InstanceLinuxUnixCreatingNotSupportPassword": {
        EN: "Setting a password is not supported when creating a Linux/Unix instance.",
    },
    "UnsupportedOperation.InvalidDiskBackupState": {
        EN: "The disk backup point status does not support this operation.",
    },
    "UnsupportedOperation.KeyPairBindDuplicate": {
        EN: "Unsupported operation: the same key pair cannot be bound"
        " to the same instance repeatedly.",
    },
    "UnsupportedOperation.KeyPairBindToBlueprints": {
        EN: "Unsupported operation: the key pair is bound to images. Please delete the custom"
        " images bound to the key pair before performing this operation.",
    },
    "UnsupportedOperation.KeyPairNotBoundToInstance": {
        EN: "Unsupported operation: a key pair that is not bound to the instance"
        " cannot be unbound from it.",
    },
    "UnsupportedOperation.KeyPairUnbindUsernameMismatch": {
        EN: "The username used to unbind the key pair does not match the one used for binding.",
    },
    "UnsupportedOperation.McpServerLatestOperationUnfinished": {
        EN: "Unsupported operation: the last operation of the MCP Server has not been completed.",
    },
    "UnsupportedOperation.NotSupportSharedBlueprint": {
        EN: "Shared images do not support this operation.",
    },
    "UnsupportedOperation.OperationNotSupportAutoGeneratePassword": {
        EN: "This operation does not support auto-generating a password.",
    },
    "UnsupportedOperation.OperationNotSupportedInIntlSite": {
        EN: "This operation is not supported on the international site.",
    },
    "UnsupportedOperation.PostDestroyResourceFailed": {
        EN: "The billing resource center failed to delete the resource.",
    },
    "UnsupportedOperation.ResetAttachCcnFailed": {
        EN: "Failed to re-apply for CCN association."
        " Please check the CCN status and try again later.",
    },
    "UnsupportedOperation.ResourceNotReturnable": {EN: "The resource cannot be returned."},
    "UnsupportedOperation.SameWithOldConfig": {
        EN: "The new configuration is the same as the old one."
        " This resource modification is not supported.",
    },
    "UnsupportedOperation.ServiceRoleNotExist": {
        EN: "The related service role does not exist, so this API cannot be called.",
    },
    "UnsupportedOperation.TatAgentNotOnline": {
        EN: "The TAT agent on the instance is not online.",
    },
    "UnsupportedOperation.WindowsNotAllowToAssociateKeyPair": {
        EN: "Windows instances do not support binding key pairs.",
    },
    "UnsupportedOperation.WindowsNotSupportKeyPair": {
        EN: "Windows instances do not support the key pair feature.",
    },
}

_CJK = re.compile(r"[\u4e00-\u9fff]")
_SKIP_EN = ("(empty description", "(not in intl-en SDK)")


def escape(text: str) -> str:
    """Make source text safe as a str.format template."""
    return text.replace("{", "{{").replace("}", "}}")


def table_rows(markdown: str, start: str) -> list[list[str]]:
    """Cells of the data rows of the first table after the heading line starting with start."""
    lines = markdown.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(start))
    rows: list[list[str]] = []
    for line in lines[begin + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not cells[0].startswith("`"):  # header or separator row
            continue
        rows.append(cells)
    return rows


def appendix_english(facts: str) -> dict[str, str]:
    """Code -> English message from Appendix A (intl-en SDK), when it has one."""
    english: dict[str, str] = {}
    for cells in table_rows(facts, "## Appendix A"):
        code, text = cells[0].strip("`"), cells[2]
        if text and not text.startswith(_SKIP_EN):
            english[code] = text
    return english


def common_codes(facts: str) -> dict[str, tuple[str, str, str]]:
    """Code -> (documented en, documented zh, real message) from section 5.3; '' if absent."""
    common: dict[str, tuple[str, str, str]] = {}
    for cells in table_rows(facts, "### 5.3"):
        codes = re.findall(r"`([^`]+)`", cells[0])
        parts = cells[1].split(" / ")
        if len(parts) > 1 and _CJK.search(parts[-1]):
            en, zh = " / ".join(parts[:-1]), parts[-1]
        else:
            en, zh = cells[1], ""
        real = re.search(r'"([^"]*)"', cells[2])
        for code in codes:
            common[code] = (en, zh, real.group(1) if real else "")
    return common


def build(reference: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Return the catalogue and the section 5.3 real messages (id -> message)."""
    api = json.loads((reference / "lighthouse-api.json").read_text(encoding="utf-8"))
    facts = (reference / "lighthouse-facts.md").read_text(encoding="utf-8")
    lighthouse_zh: dict[str, str] = {str(e["code"]): str(e["message"]) for e in api["error_codes"]}
    appendix_en = appendix_english(facts)
    common = common_codes(facts)

    ids = set(lighthouse_zh) | set(common) | set(HAND)
    catalogue: dict[str, dict[str, str]] = {}
    for msg_id in sorted(ids):
        code = msg_id.split("#", 1)[0]
        doc_en, doc_zh, _ = common.get(code, ("", "", ""))
        hand = HAND.get(msg_id, {})
        en = hand.get(EN) or escape(appendix_en.get(code, "") or doc_en)
        zh = hand.get(ZH) or escape(lighthouse_zh.get(code, "") or doc_zh)
        catalogue[msg_id] = {"code": code, EN: en, ZH: zh}
    real = {code: row[2] for code, row in common.items() if row[2]}
    return catalogue, real


def placeholders(template: str) -> set[str]:
    """Field names a template mentions."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching what the template renders to, any value for each field."""
    pattern = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is not None:
            pattern += ".+?"
    return re.compile(pattern)


def check(catalogue: dict[str, dict[str, str]], real: dict[str, str]) -> list[str]:
    """Problems found in the catalogue (empty when it is sound)."""
    problems: list[str] = []
    for msg_id, entry in catalogue.items():
        if set(entry) != {"code", EN, ZH} or not all(entry.values()):
            problems.append(f"{msg_id}: missing code/en-US/zh-CN")
            continue
        if "#" in msg_id and entry["code"] not in catalogue:
            problems.append(f"{msg_id}: variant of an unknown code")
        for lang in (EN, ZH):
            template = entry[lang]
            if "…" in template:
                problems.append(f"{msg_id} {lang}: truncated text")
            try:
                names = placeholders(template)
                bad = [n for n in names if not n.isidentifier()]
                if bad:
                    problems.append(f"{msg_id} {lang}: non-identifier fields {bad}")
                template.format(**{name: "x" for name in names})
            except (KeyError, IndexError, ValueError) as exc:
                problems.append(f"{msg_id} {lang}: {exc!r}")
    for code, message in real.items():
        if code in catalogue and not template_regex(catalogue[code][EN]).fullmatch(message):
            problems.append(f"{code}: en-US does not match the real message {message!r}")
    for msg_id in HAND:
        if msg_id not in catalogue:
            problems.append(f"{msg_id}: hand-written entry not emitted")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    reference: Path = args.reference
    out: Path = args.out

    catalogue, real = build(reference)
    problems = check(catalogue, real)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(catalogue, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    out.write_text(text, encoding="utf-8")

    print(f"{len(catalogue)} entries -> {out}")
    for msg_id, entry in catalogue.items():
        names = placeholders(entry[EN]) | placeholders(entry[ZH])
        if names:
            print(f"  {msg_id}: {', '.join(sorted(names))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
