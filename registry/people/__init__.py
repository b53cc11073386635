"""Agencies, people and their designations, user accounts, roles, API tokens and who is asking (机构、人员、用户、角色、令牌、身份认证)."""
