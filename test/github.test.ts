import { describe, expect, test } from 'bun:test'
import { parseGitHubUrl } from '../lib/github.ts'

describe('parseGitHubUrl', () => {
  test('reads owner and name from https URLs, with or without .git or a trailing slash', () => {
    for (const url of [
      'https://github.com/acme/app',
      'https://github.com/acme/app.git',
      'https://github.com/acme/app/',
      'http://github.com/acme/app.git',
    ]) {
      expect(parseGitHubUrl(url), url).toEqual({ owner: 'acme', name: 'app' })
    }
  })

  test('keeps dots, dashes and underscores that belong to the name', () => {
    expect(parseGitHubUrl('https://github.com/my-org/my.app_v2.git')).toEqual({ owner: 'my-org', name: 'my.app_v2' })
    expect(parseGitHubUrl('git@github.com:my-org/site.github.io.git')).toEqual({ owner: 'my-org', name: 'site.github.io' })
  })

  test('reads https URLs that carry credentials', () => {
    expect(parseGitHubUrl('https://x-access-token:abc@github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('reads scp-like ssh URLs', () => {
    expect(parseGitHubUrl('git@github.com:acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
    expect(parseGitHubUrl('git@github.com:acme/app')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('reads ssh:// and git:// URLs', () => {
    expect(parseGitHubUrl('ssh://git@github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
    expect(parseGitHubUrl('git://github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('other hosts are not GitHub', () => {
    for (const url of [
      'https://gitlab.com/acme/app.git',
      'git@gitlab.com:acme/app.git',
      'https://github.com.evil.example/acme/app.git',
      'https://evilgithub.com/acme/app.git',
      'https://github.example.com/acme/app.git',
      'ssh://git@bitbucket.org/acme/app.git',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })

  test('local paths and file URLs are not GitHub', () => {
    for (const url of [
      '/srv/git/app.git',
      './app',
      '../github.com/acme/app',
      'file:///srv/git/github.com/acme/app.git',
      'C:\\repos\\app',
      'github.com/acme/app',
      '',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })

  test('URLs that are not a repository root are refused rather than misread', () => {
    for (const url of [
      'https://github.com/acme',
      'https://github.com/acme/app/tree/main',
      'https://github.com/acme/app/pull/3',
      'git@github.com:acme',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })
})
